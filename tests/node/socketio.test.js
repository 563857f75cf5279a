// socket.io-client 4.x against midge's Socket.IO gateway: over WebSocket and
// polling-only, messages both ways between Socket.IO and MQTT clients
// (mosquitto_pub / mosquitto_sub / MQTT.js), a chat across both worlds, and
// the ACL applied to a Socket.IO client authenticated by token.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { io } = require('socket.io-client');
const mqtt = require('mqtt');
const { startBroker, once } = require('./broker');

const WAIT = 5000;

function connectSio(broker, opts = {}) {
  const s = io(`http://127.0.0.1:${broker.urls.ws.port}`, { reconnection: false, timeout: WAIT, ...opts });
  return s;
}

async function connected(s) {
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no connect within 5 s')), WAIT);
    s.once('connect', () => { clearTimeout(timer); resolve(); });
    s.once('connect_error', (e) => { clearTimeout(timer); reject(e); });
  });
  return s;
}

/** Resolves with the next `message` event whose topic matches `pred`. */
function nextMessage(s, pred = () => true, ms = WAIT) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { s.off('message', on); reject(new Error(`no message within ${ms} ms`)); }, ms);
    function on(m) {
      if (!pred(m)) return;
      clearTimeout(timer);
      s.off('message', on);
      resolve(m);
    }
    s.on('message', on);
  });
}

function run(cmd, args, ms = WAIT) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: ms }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${err.message} ${stderr}`));
      else resolve(stdout);
    });
  });
}

for (const transports of [['websocket'], ['polling']]) {
  test(`Socket.IO over ${transports[0]}: mosquitto_pub reaches it, its publish reaches mosquitto_sub`, async (t) => {
    const broker = await startBroker();
    t.after(() => broker.stop());
    const s = await connected(connectSio(broker, { transports }));
    t.after(() => s.close());
    assert.strictEqual(s.io.engine.transport.name, transports[0]);

    const ack = await s.timeout(WAIT).emitWithAck('subscribe', 'sensors/+/temp');
    assert.deepStrictEqual(ack, { granted: ['sensors/+/temp'], denied: [] });
    const got = nextMessage(s);
    await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(broker.urls.mqtt.port), '-t', 'sensors/k/temp', '-m', '21.5', '-q', '1']);
    const m = await got;
    assert.strictEqual(m.topic, 'sensors/k/temp');
    assert.strictEqual(m.payload, '21.5');
    assert.strictEqual(m.qos, 1);
    assert.strictEqual(m.retain, false);

    // The reverse: retained, so mosquitto_sub gets it whenever it subscribes.
    const pubAck = await s.timeout(WAIT).emitWithAck('publish', { topic: 'cmd/lamp', payload: { on: true }, qos: 1, retain: true });
    assert.deepStrictEqual(pubAck, { ok: true });
    const out = await run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(broker.urls.mqtt.port), '-t', 'cmd/#', '-C', '1', '-v', '-W', '5']);
    assert.strictEqual(out.trim(), 'cmd/lamp {"on":true}');

    // Errors come back in the acknowledgement.
    const bad = await s.timeout(WAIT).emitWithAck('publish', { topic: 'a/+/b', payload: 'x' });
    assert.strictEqual(bad.code, 'bad_topic');
    const badSub = await s.timeout(WAIT).emitWithAck('subscribe', { nope: 1 });
    assert.strictEqual(badSub.code, 'bad_request');

    const unsub = await s.timeout(WAIT).emitWithAck('unsubscribe', ['sensors/+/temp']);
    assert.deepStrictEqual(unsub, { unsubscribed: ['sensors/+/temp'] });
  });
}

test('a chat between two Socket.IO clients and one MQTT client', async (t) => {
  const broker = await startBroker();
  t.after(() => broker.stop());
  const alice = await connected(connectSio(broker, { transports: ['websocket'] }));
  const bob = await connected(connectSio(broker, { transports: ['polling'] }));
  const carol = mqtt.connect(`mqtt://127.0.0.1:${broker.urls.mqtt.port}`, { protocolVersion: 5, reconnectPeriod: 0 });
  t.after(() => { alice.close(); bob.close(); return carol.endAsync(); });
  await once(carol, 'connect');
  await carol.subscribeAsync('chat/room1', { qos: 1 });
  for (const s of [alice, bob]) {
    const ack = await s.timeout(WAIT).emitWithAck('subscribe', { filters: ['chat/room1'] });
    assert.deepStrictEqual(ack.granted, ['chat/room1']);
  }
  const lines = ['alice: hi', 'bob: hello', 'carol: hey'];
  const sioGot = (s) => new Promise((resolve, reject) => {
    const seen = [];
    const timer = setTimeout(() => reject(new Error(`only ${JSON.stringify(seen)}`)), WAIT);
    s.on('message', (m) => { seen.push(m.payload); if (seen.length === 3) { clearTimeout(timer); resolve(seen); } });
  });
  const carolGot = new Promise((resolve, reject) => {
    const seen = [];
    const timer = setTimeout(() => reject(new Error(`only ${JSON.stringify(seen)}`)), WAIT);
    carol.on('message', (_t, p) => { seen.push(p.toString()); if (seen.length === 3) { clearTimeout(timer); resolve(seen); } });
  });
  const [ga, gb] = [sioGot(alice), sioGot(bob)];
  // One after another, each acknowledged: every participant sees one order.
  assert.deepStrictEqual(await alice.timeout(WAIT).emitWithAck('publish', { topic: 'chat/room1', payload: lines[0], qos: 1 }), { ok: true });
  assert.deepStrictEqual(await bob.timeout(WAIT).emitWithAck('publish', { topic: 'chat/room1', payload: lines[1], qos: 1 }), { ok: true });
  await carol.publishAsync('chat/room1', lines[2], { qos: 1 });
  assert.deepStrictEqual(await ga, lines);
  assert.deepStrictEqual(await gb, lines);
  assert.deepStrictEqual(await carolGot, lines);
});

test('the ACL applies to a Socket.IO client authenticated by token; bad credentials are refused', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'midge-sio-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  // Anonymous clients (mosquitto_pub here) may write anywhere; alice may not read secret/.
  fs.writeFileSync(path.join(dir, 'acl'), 'topic write #\nuser alice\ntopic read #\ntopic deny secret/#\ntopic write alice/#\n');
  fs.writeFileSync(path.join(dir, 'midge.toml'), [
    '[auth]', `acl_file = "${path.join(dir, 'acl')}"`, '',
    '[[http.api_key]]', 'key = "alice-key-0123456789"', 'username = "alice"', '',
  ].join('\n'));
  const broker = await startBroker(['--config', path.join(dir, 'midge.toml')]);
  t.after(() => broker.stop());

  const refused = connectSio(broker, { transports: ['websocket'], auth: { token: 'not-a-key' } });
  await assert.rejects(connected(refused), /bearer token/);
  refused.close();

  const s = await connected(connectSio(broker, { transports: ['websocket'], auth: { token: 'alice-key-0123456789' } }));
  t.after(() => s.close());
  const ack = await s.timeout(WAIT).emitWithAck('subscribe', ['#', 'secret/#']);
  assert.deepStrictEqual(ack.granted, ['#']);
  assert.deepStrictEqual(ack.denied.map((d) => d.filter), ['secret/#']);
  // secret/x first, then public/x: receiving public/x first proves secret/x never came.
  const got = nextMessage(s, (m) => !m.topic.startsWith('$'));
  const port = String(broker.urls.mqtt.port);
  await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', port, '-t', 'secret/x', '-m', 'hidden', '-q', '1']);
  await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', port, '-t', 'public/x', '-m', 'shown', '-q', '1']);
  const m = await got;
  assert.strictEqual(m.topic, 'public/x');
  const denied = await s.timeout(WAIT).emitWithAck('publish', { topic: 'secret/y', payload: 'no', qos: 0 });
  assert.strictEqual(denied.code, 'forbidden');
  const allowed = await s.timeout(WAIT).emitWithAck('publish', { topic: 'alice/y', payload: 'yes', qos: 1 });
  assert.deepStrictEqual(allowed, { ok: true });
});
