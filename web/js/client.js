// The Client tab: a built-in MQTT over WebSocket client (MQTT.js) to
// connect with any credentials, subscribe, publish, and read a log of the
// messages received, newest first.
import { $, el, setText, fmtTime, payloadText, hexPreview, randomId, truncate } from './dom.js';

const MAX_LOG = 500;
const MAX_SHOWN_PAYLOAD = 2000;

export class ClientView {
  constructor(root, session) {
    this.root = root;
    this.session = session;
    this.client = null;
    this.subs = new Map(); // filter -> granted QoS
    this.pending = []; // log entries waiting for the next flush
    this.flushTimer = null;
    this.received = 0;
    this.form = $('#client-connect', root);
    this.status = $('#client-status', root);
    this.log = $('#client-log', root);
    this.subList = $('#client-subs', root);
    this.pubStatus = $('#client-pub-status', root);
    this.subStatus = $('#client-sub-status', root);

    const f = this.form.elements;
    const https = location.protocol === 'https:';
    f.host.value = location.hostname || '127.0.0.1';
    f.port.value = location.port || (https ? '443' : '80');
    f.path.value = '/mqtt';
    f.tls.checked = https;
    f.clientId.value = `dash-client-${randomId(6)}`;
    this.prefill();
    session.addEventListener('change', () => this.prefill());

    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.connect();
    });
    $('#client-disconnect', root).addEventListener('click', () => this.disconnect());
    $('#client-subscribe', root).addEventListener('submit', (e) => {
      e.preventDefault();
      this.subscribe();
    });
    $('#client-publish', root).addEventListener('submit', (e) => {
      e.preventDefault();
      this.publish();
    });
    $('#client-clear', root).addEventListener('click', () => {
      this.log.replaceChildren();
      this.received = 0;
      this.renderCount();
    });
    this.subList.addEventListener('click', (e) => {
      const b = e.target.closest('button[data-filter]');
      if (b) this.unsubscribe(b.dataset.filter);
    });
    this.setConnected(false, 'Not connected.');
  }

  /**
   * Fills the credential fields with the signed-in user's, unless the user
   * typed other ones (fields still holding the last filled-in values follow
   * the session, sign-out included).
   */
  prefill() {
    const f = this.form.elements;
    const last = this.filled || { username: '', password: '' };
    if (f.username.value !== last.username || f.password.value !== last.password) return;
    const creds = this.session.creds || { username: '', password: '' };
    f.username.value = creds.username;
    f.password.value = creds.password;
    this.filled = { username: creds.username, password: creds.password };
  }

  url() {
    const f = this.form.elements;
    let path = f.path.value.trim() || '/mqtt';
    if (!path.startsWith('/')) path = `/${path}`;
    const host = f.host.value.trim();
    const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
    return `${f.tls.checked ? 'wss' : 'ws'}://${h}:${f.port.value.trim()}${path}`;
  }

  setConnected(connected, text) {
    this.root.dataset.connected = String(connected);
    setText(this.status, text);
    this.status.className = `badge ${connected ? 'ok' : 'idle'}`;
    for (const b of this.root.querySelectorAll('[data-needs-connection]')) b.disabled = !connected;
    $('#client-disconnect', this.root).disabled = !this.client;
    $('#client-connect-button', this.root).disabled = !!this.client;
  }

  connect() {
    this.disconnect();
    const f = this.form.elements;
    const port = Number(f.port.value);
    if (!f.host.value.trim() || !Number.isInteger(port) || port < 1 || port > 65535) {
      this.setConnected(false, 'Enter a host and a port between 1 and 65535.');
      return;
    }
    const url = this.url();
    const opts = {
      clientId: f.clientId.value.trim() || `dash-client-${randomId(6)}`,
      protocolVersion: Number(f.version.value),
      clean: f.clean.checked,
      keepalive: 30,
      reconnectPeriod: 0, // the user decides when to try again
      connectTimeout: 8000,
    };
    if (f.username.value) {
      opts.username = f.username.value;
      opts.password = f.password.value;
    }
    const mqtt = window.mqtt;
    if (!mqtt) {
      this.setConnected(false, 'MQTT.js did not load.');
      return;
    }
    const client = mqtt.connect(url, opts);
    this.client = client;
    this.subs.clear();
    this.renderSubs();
    this.setConnected(false, `Connecting to ${url} …`);
    client.on('connect', () => {
      if (this.client === client) this.setConnected(true, `Connected to ${url} as ${opts.clientId}.`);
    });
    client.on('error', (err) => {
      if (this.client !== client) return;
      this.client = null;
      client.end(true);
      this.setConnected(false, `Connection failed: ${(err && err.message) || err}`);
    });
    client.on('close', () => {
      if (this.client !== client) return;
      this.client = null;
      this.setConnected(false, `Disconnected from ${url}.`);
    });
    client.on('message', (topic, payload, packet) => this.onMessage(topic, payload, packet));
  }

  disconnect() {
    const c = this.client;
    if (!c) return;
    this.client = null;
    c.end(false, {}, () => {});
    this.subs.clear();
    this.renderSubs();
    this.setConnected(false, 'Disconnected.');
  }

  subscribe() {
    const f = $('#client-subscribe', this.root).elements;
    const filter = f.filter.value.trim();
    const qos = Number(f.qos.value);
    if (!this.client || !filter) return;
    this.client.subscribe(filter, { qos }, (err, granted) => {
      const g = granted && granted[0];
      if (err || !g || g.qos >= 128) {
        setText(this.subStatus, `Subscribing to ${filter} failed: ${err ? err.message : `refused (code ${g ? g.qos : '?'})`}`);
        return;
      }
      this.subs.set(filter, g.qos);
      setText(this.subStatus, `Subscribed to ${filter} (QoS ${g.qos}).`);
      this.renderSubs();
    });
  }

  unsubscribe(filter) {
    if (!this.client) return;
    this.client.unsubscribe(filter, () => {
      this.subs.delete(filter);
      setText(this.subStatus, `Unsubscribed from ${filter}.`);
      this.renderSubs();
    });
  }

  renderSubs() {
    const items = [...this.subs].map(([filter, qos]) => el('li', {},
      el('code', {}, filter), ` QoS ${qos} `,
      el('button', { type: 'button', class: 'small', dataset: { filter }, 'aria-label': `Unsubscribe from ${filter}` }, 'Unsubscribe')));
    this.subList.replaceChildren(...items);
  }

  publish() {
    const f = $('#client-publish', this.root).elements;
    const topic = f.topic.value.trim();
    if (!this.client || !topic) return;
    const qos = Number(f.qos.value);
    const retain = f.retain.checked;
    this.client.publish(topic, f.payload.value, { qos, retain }, (err) => {
      setText(this.pubStatus, err ? `Publishing to ${topic} failed: ${err.message}` : `Published to ${topic} (QoS ${qos}${retain ? ', retained' : ''}) at ${fmtTime(new Date())}.`);
    });
  }

  onMessage(topic, payload, packet) {
    this.received += 1;
    this.pending.push({ time: new Date(), topic, payload, qos: packet.qos, retain: !!packet.retain });
    if (this.pending.length > MAX_LOG) this.pending.splice(0, this.pending.length - MAX_LOG);
    if (!this.flushTimer) {
      // A timer rather than requestAnimationFrame: the log fills in
      // background tabs too.
      this.flushTimer = setTimeout(() => this.flush(), 50);
    }
  }

  /** Adds the waiting messages to the log at once (a burst costs one layout). */
  flush() {
    this.flushTimer = null;
    const batch = this.pending;
    this.pending = [];
    const frag = document.createDocumentFragment();
    for (let i = batch.length - 1; i >= 0; i -= 1) {
      const m = batch[i];
      const text = payloadText(m.payload);
      const shown = text === null ? `(${m.payload.length} bytes) ${hexPreview(m.payload, 32)}` : truncate(text, MAX_SHOWN_PAYLOAD);
      const flags = [`QoS ${m.qos}`, m.retain ? 'retained' : null].filter(Boolean).join(' · ');
      frag.append(el('li', {},
        el('time', { datetime: m.time.toISOString() }, `[${fmtTime(m.time)}]`), ' ',
        el('span', { class: 'topic' }, m.topic), ' ',
        el('span', { class: 'payload' }, shown), ' ',
        el('span', { class: 'flags' }, flags)));
    }
    this.log.prepend(frag);
    while (this.log.childElementCount > MAX_LOG) this.log.lastElementChild.remove();
    this.renderCount();
  }

  renderCount() {
    setText($('#client-log-count', this.root), `${this.received} received${this.received > MAX_LOG ? `, newest ${MAX_LOG} shown` : ''}`);
  }
}
