// The dashboard in real headless Chromium against the real midge binary
// (open broker, --sys-interval 1): overview, topic tree and field charts,
// the built-in client, two pages talking, keyboard use, a narrow screen,
// the Clients tab without the management API, and a live sensor fleet.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { execFile, spawn } = require('node:child_process');
const { startBroker } = require('./broker');
const { launch, openPage, screenshot } = require('./browser');
const { assertNotBlank } = require('./png');

let broker;
let browser;

before(async () => {
  broker = await startBroker();
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
  if (broker) await broker.stop();
});

/** Runs mosquitto_pub against the broker; rejects on failure or after 10 s. */
function mosquittoPub(topic, message, extra = []) {
  return new Promise((resolve, reject) => {
    execFile('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(broker.urls.mqtt.port), '-t', topic, '-m', message, ...extra],
      { timeout: 10000 }, (err, stdout, stderr) => (err ? reject(new Error(`mosquitto_pub: ${err.message} ${stderr}`)) : resolve()));
  });
}

async function dashboard(opts) {
  const page = await openPage(browser, `${broker.http}/`, opts);
  await page.waitForFunction(() => document.body.dataset.monitor === 'connected');
  return page;
}

async function closePage(page) {
  await page.context().close();
}

/** Connects the page's built-in client with its defaults (this broker) and subscribes to `filter`. */
async function clientConnect(page, filter, qos = '0') {
  await page.click('#tab-client');
  await page.click('#client-connect-button');
  await page.waitForFunction(() => document.querySelector('#view-client').dataset.connected === 'true');
  await page.fill('#client-subscribe [name=filter]', filter);
  await page.selectOption('#client-subscribe [name=qos]', qos);
  await page.click('#client-subscribe button[type=submit]');
  await page.waitForFunction((f) => [...document.querySelectorAll('#client-subs code')].some((c) => c.textContent === f), filter);
}

async function clientPublish(page, topic, payload, { qos = '0', retain = false } = {}) {
  await page.fill('#client-publish [name=topic]', topic);
  await page.fill('#client-publish [name=payload]', payload);
  await page.selectOption('#client-publish [name=qos]', qos);
  await page.setChecked('#client-publish [name=retain]', retain);
  await page.click('#client-publish button[type=submit]');
}

/** Waits until the page's message log has an entry `[hh:mm:ss.mmm] topic payload`, returns its text. */
async function waitForLogEntry(page, topic, payload) {
  const handle = await page.waitForFunction(([t, p]) => {
    const li = [...document.querySelectorAll('#client-log li')].find((x) => x.querySelector('.topic').textContent === t && x.querySelector('.payload').textContent === p);
    return li ? li.textContent : null;
  }, [topic, payload]);
  return handle.jsonValue();
}

test('the page loads, shows live $SYS statistics and charts, with no console error', { timeout: 60000 }, async () => {
  const page = await dashboard();
  try {
    assert.equal(await page.title(), 'midge');
    // Two $SYS samples (sys_interval 1 s) give rates as well as totals.
    await page.waitForFunction(() => Number(document.querySelector('#view-overview').dataset.samples || 0) >= 3, null, { timeout: 15000 });
    const clients = Number((await page.textContent('[data-stat=clients]')).replace(/,/g, ''));
    assert.ok(clients >= 1, `clients connected: ${clients}`);
    assert.match(await page.textContent('[data-stat=uptime]'), /^\d+s$|^\d+m \d+s$/);
    assert.match(await page.textContent('[data-stat=msgs-out]'), /^[\d.]+[kMG]?$/);
    assert.match(await page.textContent('#stats-source'), /\$SYS\/broker\/# over MQTT, every 1 s/);
    assert.equal(await page.locator('#view-overview .chart canvas').count() >= 4, true);
    const version = await page.textContent('#broker-version');
    assert.match(version, /midge/);
    const png = await screenshot(page, 'overview');
    assertNotBlank(png);
    assert.deepEqual(page.problems, []);
  } finally {
    await closePage(page);
  }
});

test('the built-in client connects over WebSocket, subscribes, publishes and logs the message', { timeout: 60000 }, async () => {
  const page = await dashboard();
  try {
    await page.click('#tab-client');
    assert.equal(await page.inputValue('#client-connect [name=host]'), broker.urls.ws.host);
    assert.equal(await page.inputValue('#client-connect [name=port]'), String(broker.urls.ws.port));
    assert.equal(await page.inputValue('#client-connect [name=path]'), '/mqtt');
    await clientConnect(page, 'test/#', '2');
    await clientPublish(page, 'test/hello', 'world one', { qos: '1' });
    const entry = await waitForLogEntry(page, 'test/hello', 'world one');
    assert.match(entry, /^\[\d\d:\d\d:\d\d\.\d{3}\] test\/hello world one QoS 1$/);
    assert.match(await page.textContent('#client-pub-status'), /Published to test\/hello \(QoS 1\)/);
    // Newest first.
    await clientPublish(page, 'test/second', 'world two', { qos: '2', retain: true });
    await waitForLogEntry(page, 'test/second', 'world two');
    const first = await page.textContent('#client-log li:first-child .topic');
    assert.equal(first, 'test/second');
    // Unsubscribe: a later message is not logged.
    await page.click('#client-subs button[data-filter="test/#"]');
    await page.waitForFunction(() => document.querySelectorAll('#client-subs li').length === 0);
    const before = await page.locator('#client-log li').count();
    await mosquittoPub('test/after', 'not for us');
    // A control message on a filter still subscribed proves delivery happened.
    await page.fill('#client-subscribe [name=filter]', 'control/#');
    await page.click('#client-subscribe button[type=submit]');
    await page.waitForFunction(() => [...document.querySelectorAll('#client-subs code')].some((c) => c.textContent === 'control/#'));
    await mosquittoPub('control/x', 'marker');
    await waitForLogEntry(page, 'control/x', 'marker');
    assert.equal(await page.locator('#client-log li').count(), before + 1);
    await page.click('#client-disconnect');
    await page.waitForFunction(() => document.querySelector('#view-client').dataset.connected === 'false');
    assertNotBlank(await screenshot(page, 'client'));
    assert.deepEqual(page.problems, []);
  } finally {
    await closePage(page);
  }
});

test('a mosquitto_pub message appears in the topic tree, its numeric fields in charts', { timeout: 60000 }, async () => {
  const page = await dashboard();
  try {
    await page.click('#tab-topics');
    await mosquittoPub('sensors/room1/env', '{"temperature": 25, "humidity": 60, "label": "north wall"}');
    await mosquittoPub('sensors/room1/co2', '612');
    const row = page.locator('button[data-path="sensors/room1/env"]');
    await row.waitFor();
    assert.equal(await row.locator('.count').textContent(), '1');
    await page.waitForFunction(() => document.querySelector('button[data-path="sensors"] .count').textContent === '2');
    await row.click();
    await page.waitForSelector('#detail-fields tr[data-field="temperature"] td[data-value="25"]');
    await page.waitForSelector('#detail-fields tr[data-field="humidity"] td[data-value="60"]');
    assert.equal(await page.locator('#detail-fields tr[data-field="label"]').count(), 0, 'a string field is not charted');
    assert.equal(await page.getAttribute('#field-charts', 'data-fields'), 'temperature,humidity');
    assert.match(await page.textContent('#detail-payload'), /"temperature": 25/);
    // A second reading: the chart holds both points, the table the new value.
    await mosquittoPub('sensors/room1/env', '{"temperature": 27.5, "humidity": 58}');
    await page.waitForSelector('#detail-fields tr[data-field="temperature"] td[data-value="27.5"]');
    await page.waitForFunction(() => document.querySelector('#field-charts').dataset.points === '2');
    const chart = page.locator('figure.field-chart[data-field="temperature"]');
    assert.equal(await chart.locator('canvas').count(), 1);
    assertNotBlank(await chart.screenshot(), { minColours: 8, minStddev: 4 });
    // A bare number is charted as "value".
    await page.click('button[data-path="sensors/room1/co2"]');
    await page.waitForSelector('#detail-fields tr[data-field="value"] td[data-value="612"]');
    // Search narrows the list to matching topics.
    await page.fill('#topic-search', 'co2');
    await page.waitForFunction(() => [...document.querySelectorAll('#topic-tree button[data-path]')].map((b) => b.dataset.path).join() === 'sensors/room1/co2');
    await page.fill('#topic-search', '');
    await page.click('button[data-path="sensors/room1/env"]');
    assertNotBlank(await screenshot(page, 'topics'));
    assert.deepEqual(page.problems, []);
  } finally {
    await closePage(page);
  }
});

test('the topic tree follows its own filter, pauses by hand and pauses itself under load', { timeout: 60000 }, async () => {
  const page = await openPage(browser, `${broker.http}/?tree-limit=30#topics`);
  const mqtt = require('mqtt');
  let blaster;
  try {
    await page.waitForFunction(() => document.body.dataset.monitor === 'connected');
    await mosquittoPub('other/x', '1', ['-q', '1']);
    await page.locator('button[data-path="other/x"]').waitFor();
    await page.fill('#topic-filter', 'only/#');
    await page.click('#topic-filter-form button[type=submit]');
    await page.waitForFunction(() => !document.querySelector('button[data-path="other/x"]'));
    // QoS 1: mosquitto_pub returns once the broker has routed the message,
    // so other/y was handled before only/b.
    await mosquittoPub('other/y', '1', ['-q', '1']);
    await mosquittoPub('only/b', '1', ['-q', '1']);
    await page.locator('button[data-path="only/b"]').waitFor();
    assert.equal(await page.locator('button[data-path^="other"]').count(), 0);
    // Paused: nothing new arrives; resumed: it does again.
    await page.click('#topic-pause');
    assert.equal(await page.getAttribute('#topic-pause', 'aria-pressed'), 'true');
    await page.waitForFunction(() => document.querySelector('#view-topics').dataset.paused === 'true');
    await mosquittoPub('only/while-paused', '1', ['-q', '1']);
    await page.click('#topic-pause');
    await page.waitForFunction(() => document.querySelector('#view-topics').dataset.paused === 'false');
    // The resubscription is asynchronous: publish until a message shows up.
    const deadline = Date.now() + 10000;
    while (!(await page.locator('button[data-path="only/resumed"]').count())) {
      assert.ok(Date.now() < deadline, 'no message after Resume');
      await mosquittoPub('only/resumed', '1', ['-q', '1']);
      // Bounded by the deadline above; give the page a moment between tries.
      await page.waitForTimeout(200);
    }
    assert.equal(await page.locator('button[data-path="only/while-paused"]').count(), 0);
    // More than tree-limit (30) messages a second for two seconds: it pauses itself.
    blaster = mqtt.connect(`mqtt://127.0.0.1:${broker.urls.mqtt.port}`, { clientId: 'blaster' });
    await new Promise((resolve, reject) => { blaster.once('connect', resolve); blaster.once('error', reject); });
    const timer = setInterval(() => { for (let i = 0; i < 10; i += 1) blaster.publish('only/load', String(i)); }, 50);
    try {
      await page.waitForFunction(() => document.querySelector('#view-topics').dataset.paused === 'true', null, { timeout: 15000 });
    } finally {
      clearInterval(timer);
    }
    assert.match(await page.textContent('#topic-notice'), /Paused by itself: more than 30 messages per second/);
    assert.equal(await page.textContent('#topic-pause'), 'Resume');
    assert.deepEqual(page.problems, []);
  } finally {
    if (blaster) blaster.end(true);
    await closePage(page);
  }
});

test('two pages exchange messages through the broker', { timeout: 60000 }, async () => {
  const a = await dashboard();
  const b = await dashboard();
  try {
    await clientConnect(a, 'chat/#', '2');
    await clientConnect(b, 'chat/#', '1');
    await clientPublish(a, 'chat/a', 'hello from A', { qos: '1' });
    await waitForLogEntry(b, 'chat/a', 'hello from A');
    await clientPublish(b, 'chat/b', 'hello from B', { qos: '2' });
    await waitForLogEntry(a, 'chat/b', 'hello from B');
    // Each page also saw its own message (it subscribed to chat/# too).
    await waitForLogEntry(a, 'chat/a', 'hello from A');
    await waitForLogEntry(b, 'chat/b', 'hello from B');
    assertNotBlank(await screenshot(b, 'two-pages-b'));
    assert.deepEqual(a.problems, []);
    assert.deepEqual(b.problems, []);
  } finally {
    await closePage(a);
    await closePage(b);
  }
});

test('tabs and the topic tree work from the keyboard', { timeout: 60000 }, async () => {
  const page = await dashboard();
  try {
    await mosquittoPub('kb/one/leaf', '1');
    await page.focus('#tab-overview');
    await page.keyboard.press('ArrowRight');
    assert.equal(await page.getAttribute('#tab-topics', 'aria-selected'), 'true');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'tab-topics');
    assert.equal(await page.isVisible('#view-topics'), true);
    assert.equal(await page.isVisible('#view-overview'), false);
    await page.keyboard.press('End');
    assert.equal(await page.getAttribute('#tab-clients', 'aria-selected'), 'true');
    await page.keyboard.press('ArrowRight'); // wraps around
    assert.equal(await page.getAttribute('#tab-overview', 'aria-selected'), 'true');
    await page.keyboard.press('ArrowLeft');
    await page.keyboard.press('Home');
    await page.keyboard.press('ArrowRight');
    assert.match(await page.evaluate(() => location.hash), /#topics/);
    // Into the tree: rows are buttons; Enter selects, arrows move.
    const kb = page.locator('button[data-path="kb"]');
    await kb.waitFor();
    await kb.focus();
    assert.equal(await kb.getAttribute('aria-expanded'), 'true');
    await page.keyboard.press('ArrowLeft'); // collapse
    await page.waitForFunction(() => document.querySelector('button[data-path="kb"]').getAttribute('aria-expanded') === 'false');
    await page.keyboard.press('ArrowRight'); // expand again
    await page.waitForFunction(() => document.querySelector('button[data-path="kb"]').getAttribute('aria-expanded') === 'true');
    await page.keyboard.press('ArrowDown');
    assert.equal(await page.evaluate(() => document.activeElement.dataset.path), 'kb/one');
    // kb/one (depth 1) starts open, so its leaf is listed.
    await page.locator('button[data-path="kb/one/leaf"]').waitFor();
    await page.locator('button[data-path="kb/one/leaf"]').focus();
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.querySelector('#topic-detail').dataset.topic === 'kb/one/leaf');
    // Focus survives the once-a-second refresh: the clock ticks after the
    // tree's render in the same timer, so two ticks mean a render happened.
    for (let i = 0; i < 2; i += 1) {
      const clock = await page.textContent('#clock');
      await page.waitForFunction((c) => document.querySelector('#clock').textContent !== c, clock);
    }
    assert.equal(await page.evaluate(() => document.activeElement.dataset.path), 'kb/one/leaf');
    assert.deepEqual(page.problems, []);
  } finally {
    await closePage(page);
  }
});

test('on a phone-sized screen nothing overflows sideways', { timeout: 60000 }, async () => {
  const page = await dashboard({ viewport: { width: 390, height: 844 } });
  try {
    await page.waitForFunction(() => Number(document.querySelector('#view-overview').dataset.samples || 0) >= 2, null, { timeout: 15000 });
    for (const tab of ['overview', 'topics', 'client', 'clients']) {
      await page.click(`#tab-${tab}`);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${tab}: page is ${overflow}px wider than the screen`);
    }
    await page.click('#tab-overview');
    assertNotBlank(await screenshot(page, 'phone', { fullPage: true }));
    assert.deepEqual(page.problems, []);
  } finally {
    await closePage(page);
  }
});

test('without the management API the Clients tab shows $SYS counts and says why', { timeout: 60000 }, async () => {
  const page = await dashboard();
  try {
    await page.click('#tab-clients');
    await page.waitForFunction(() => document.querySelector('#view-clients').dataset.mode === 'sys');
    assert.match(await page.textContent('#clients-note'), /Sign in as an admin/);
    await page.waitForFunction(() => /\d+ connected/.test(document.querySelector('#clients-summary').textContent), null, { timeout: 15000 });
    assert.deepEqual(page.problems, []);
  } finally {
    await closePage(page);
  }
});

test('a simulated sensor fleet fills the topic tree and the busiest topics', { timeout: 90000 }, async () => {
  const page = await dashboard();
  const fleet = spawn(process.env.MIDGE_PYTHON || 'python3', [path.resolve(__dirname, '../../examples/sensor-fleet.py'), '--port', String(broker.urls.mqtt.port),
    '--sensors', '12', '--interval', '0.5', '--duration', '30'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let fleetErr = '';
  fleet.stderr.on('data', (d) => { fleetErr += d; });
  try {
    // Only live traffic counts: the retained messages of earlier tests
    // arrive at subscribe time and have no rate.
    await page.waitForFunction(() => {
      const topics = [...document.querySelectorAll('#busiest tbody td.topic')].map((td) => td.textContent);
      return topics.length === 8 && topics.every((t) => t.startsWith('fleet/'));
    }, null, { timeout: 20000 }).catch((e) => { throw new Error(`${e.message}; fleet stderr: ${fleetErr}`); });
    await page.click('#tab-topics');
    await page.waitForFunction(() => document.querySelectorAll('#topic-tree button[data-path^="fleet/"][data-topic="1"]').length >= 12, null, { timeout: 15000 });
    await page.fill('#topic-search', 'sensor-00');
    await page.click('button[data-path="fleet/north/sensor-00"]');
    await page.waitForFunction(() => (document.querySelector('#field-charts') || {}).dataset?.fields === 'temperature,humidity,battery,rssi');
    assertNotBlank(await screenshot(page, 'fleet-topics'));
    assert.deepEqual(page.problems, []);
  } finally {
    if (fleet.exitCode === null) {
      const done = new Promise((r) => fleet.once('exit', r));
      fleet.kill('SIGTERM');
      await Promise.race([done, new Promise((r) => setTimeout(r, 5000))]);
    }
    await closePage(page);
  }
});
