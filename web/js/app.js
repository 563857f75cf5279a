// The dashboard's entry point: wires the connection, the models and the
// four views together, and owns the tabs, the status badge and sign-in.
import { $, setText, fmtTime } from './dom.js';
import { Session } from './session.js';
import { Monitor } from './monitor.js';
import { StatsModel, SysCollector, ApiPoller } from './stats.js';
import { TopicTree } from './topictree.js';
import { OverviewView } from './overview.js';
import { TopicsView } from './topics.js';
import { ClientView } from './client.js';
import { ClientsView } from './clients.js';

const session = new Session();
const stats = new StatsModel({ windowSecs: 600 });
const tree = new TopicTree();
const monitor = new Monitor(session);
const overview = new OverviewView($('#view-overview'), stats, tree);
const topics = new TopicsView($('#view-topics'), tree, monitor);
const client = new ClientView($('#view-client'), session);
const clients = new ClientsView($('#view-clients'), session, stats, () => [monitor.clientId, $('#client-connect').elements.clientId.value]);

// ---- statistics: /api/v1/stats when allowed, $SYS otherwise ----
let apiActive = false;
let sysAllowed = null;
const sys = new SysCollector((sample) => {
  if (!apiActive) stats.add(sample, 'sys');
  describeSource();
});
const api = new ApiPoller(session, (sample) => {
  apiActive = true;
  stats.add(sample, 'api');
  describeSource();
}, () => {
  apiActive = false;
  describeSource();
});

function describeSource() {
  let text;
  if (apiActive) text = 'Live from GET /api/v1/stats, every 2 s.';
  else if (sysAllowed === false) text = 'This user may not read $SYS/broker/#, so there are no statistics; sign in as a user the ACL allows, or as an admin (GET /api/v1/stats).';
  else {
    const pts = stats.points;
    const every = pts.length > 1 ? Math.round((pts[pts.length - 1].time - pts[pts.length - 2].time) / 1000) : null;
    text = `Live from $SYS/broker/# over MQTT${every ? `, every ${every} s (the broker's sys_interval)` : ''}.`;
  }
  overview.setSource(text);
  const v = sys.version;
  if (v) setText($('#broker-version'), v);
}

monitor.addEventListener('sys', (e) => sys.offer(e.detail.name, e.detail.value));
monitor.addEventListener('sysaccess', (e) => {
  sysAllowed = e.detail.allowed;
  describeSource();
});
monitor.addEventListener('treeaccess', (e) => {
  if (!e.detail.allowed) setText($('#topic-summary'), `Not allowed to subscribe to ${e.detail.filter}.`);
});
let treeMessages = 0; // in the current second
monitor.addEventListener('message', (e) => {
  const m = e.detail;
  tree.add(m.topic, m.payload, m);
  treeMessages += 1;
});

// ---- connection status and sign-in ----
const badge = $('#conn-status');
const dialog = $('#login-dialog');
const loginForm = $('#login-form');
let signingIn = false;

const STATUS = {
  connecting: ['connecting…', 'warn'],
  connected: ['live', 'ok'],
  offline: ['offline', 'bad'],
  auth: ['sign-in needed', 'bad'],
};

monitor.addEventListener('status', (e) => {
  const { state, message } = e.detail;
  const [label, cls] = STATUS[state] || [state, 'warn'];
  setText(badge, label);
  badge.className = `badge ${cls}`;
  badge.title = message;
  document.body.dataset.monitor = state;
  if (state === 'connected') {
    if (signingIn) {
      signingIn = false;
      dialog.close();
    }
    if (session.creds) api.start();
    else {
      api.stop();
      apiActive = false;
    }
    // Who may read the management API may have changed.
    if (!$('#view-clients').hidden) clients.refresh();
  } else if (state === 'auth') {
    api.stop();
    apiActive = false;
    if (signingIn) {
      signingIn = false;
      session.signOut();
      setText($('#login-error'), 'The broker refused this username and password.');
      setBusy(false);
      $('#login-password').select();
    } else {
      openLogin(message);
    }
  }
  renderUser();
});

function setBusy(busy) {
  $('#login-submit').disabled = busy;
  setText($('#login-submit'), busy ? 'Signing in…' : 'Sign in');
}

function openLogin(reason) {
  setText($('#login-reason'), reason ? `The dashboard could not connect: ${reason}.` : 'Sign in with an MQTT username and password (the password file’s users); admins also get the management API.');
  setText($('#login-error'), '');
  setBusy(false);
  if (!dialog.open) dialog.showModal();
  $('#login-username').focus();
}

loginForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const username = $('#login-username').value;
  if (!username) {
    setText($('#login-error'), 'Enter a username.');
    return;
  }
  setText($('#login-error'), '');
  setBusy(true);
  signingIn = true;
  session.signIn(username, $('#login-password').value);
  monitor.start();
});
$('#login-cancel').addEventListener('click', () => {
  signingIn = false;
  dialog.close();
});
dialog.addEventListener('close', () => {
  signingIn = false;
  setBusy(false);
});

$('#login-button').addEventListener('click', () => {
  if (session.creds) {
    session.signOut();
    api.stop();
    apiActive = false;
    monitor.start();
  } else {
    openLogin('');
  }
});

function renderUser() {
  const user = session.username;
  setText($('#user-label'), user ? `signed in as ${user}` : '');
  setText($('#login-button'), user ? 'Sign out' : 'Sign in');
}

// ---- tabs (hash routing, arrow keys between tabs) ----
const tabs = [...document.querySelectorAll('[role="tab"]')];
const views = { overview, topics, client, clients };

function showTab(name, focus = false) {
  if (!views[name]) name = 'overview';
  for (const t of tabs) {
    const on = t.dataset.view === name;
    t.setAttribute('aria-selected', String(on));
    t.tabIndex = on ? 0 : -1;
    $(`#${t.getAttribute('aria-controls')}`).hidden = !on;
    if (on && focus) t.focus();
  }
  document.body.dataset.view = name;
  if (name === 'clients') clients.show();
  else clients.hide();
  if (name === 'topics') topics.render(true);
  if (name === 'overview') overview.renderBusiest(Date.now());
  if (location.hash !== `#${name}`) history.replaceState(null, '', `#${name}`);
}

for (const t of tabs) {
  t.addEventListener('click', () => showTab(t.dataset.view));
  t.addEventListener('keydown', (e) => {
    const i = tabs.indexOf(t);
    const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[e.key];
    if (next === undefined) return;
    e.preventDefault();
    showTab(tabs[(next + tabs.length) % tabs.length].dataset.view, true);
  });
}
window.addEventListener('hashchange', () => showTab(location.hash.slice(1)));

// ---- a steady clock for the views that show rates ----
setInterval(() => {
  const now = Date.now();
  if (!$('#view-overview').hidden) overview.renderBusiest(now);
  topics.checkLoad(treeMessages);
  treeMessages = 0;
  topics.render();
  setText($('#clock'), fmtTime(new Date(now)).slice(0, 8));
}, 1000);

showTab(location.hash.slice(1) || 'overview');
renderUser();
describeSource();
monitor.start();
document.body.dataset.ready = 'true';
