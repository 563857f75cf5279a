// MQTT.js against midge, exactly as a Node or browser app uses it: mqtt://
// for devices, ws:// with and without a path for browser apps, wss:// with a
// certificate, and both protocol versions.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const mqtt = require('mqtt');
const { startBroker, once } = require('./broker');

async function roundTrip(pubUrl, subUrl, opts = {}) {
  const sub = mqtt.connect(subUrl, { ...opts, reconnectPeriod: 0 });
  const pub = mqtt.connect(pubUrl, { ...opts, reconnectPeriod: 0 });
  try {
    await Promise.all([once(sub, 'connect'), once(pub, 'connect')]);
    await sub.subscribeAsync('home/+/temperature', { qos: 1 });
    const got = once(sub, 'message');
    await pub.publishAsync('home/kitchen/temperature', JSON.stringify({ temperature: 21.5 }), { qos: 1 });
    const [topic, payload] = await got;
    assert.strictEqual(topic, 'home/kitchen/temperature');
    assert.deepStrictEqual(JSON.parse(payload.toString()), { temperature: 21.5 });
  } finally {
    await Promise.all([sub.endAsync(), pub.endAsync()]);
  }
}

test('the tutorial code works unchanged: mqtt://localhost and ws://localhost without a path', async (t) => {
  const broker = await startBroker();
  t.after(() => broker.stop());
  // Device side: mqtt.connect("mqtt://localhost:PORT"); browser side: ws://localhost:PORT (no path).
  await roundTrip(`mqtt://localhost:${broker.urls.mqtt.port}`, `ws://localhost:${broker.urls.ws.port}`);
  await roundTrip(`ws://localhost:${broker.urls.ws.port}`, `mqtt://localhost:${broker.urls.mqtt.port}`);
});

test('ws:// on /mqtt with MQTT 3.1.1 and 5.0', async (t) => {
  const broker = await startBroker();
  t.after(() => broker.stop());
  const url = `ws://127.0.0.1:${broker.urls.ws.port}/mqtt`;
  await roundTrip(url, url, { protocolVersion: 4 });
  await roundTrip(url, url, { protocolVersion: 5 });
});

test('MQTT 5 properties survive the WebSocket path', async (t) => {
  const broker = await startBroker();
  t.after(() => broker.stop());
  const url = `ws://127.0.0.1:${broker.urls.ws.port}/mqtt`;
  const sub = mqtt.connect(url, { protocolVersion: 5, reconnectPeriod: 0 });
  const pub = mqtt.connect(`mqtt://127.0.0.1:${broker.urls.mqtt.port}`, { protocolVersion: 5, reconnectPeriod: 0 });
  const connected = Promise.all([once(sub, 'connect'), once(pub, 'connect')]);
  t.after(() => Promise.all([sub.endAsync(), pub.endAsync()]));
  await connected;
  await sub.subscribeAsync('rpc/request', { qos: 1 });
  const got = once(sub, 'message');
  await pub.publishAsync('rpc/request', 'ping', {
    qos: 1,
    properties: { responseTopic: 'rpc/reply', correlationData: Buffer.from('c-1'), contentType: 'text/plain', userProperties: { app: 'demo' } },
  });
  const [, payload, packet] = await got;
  assert.strictEqual(payload.toString(), 'ping');
  assert.strictEqual(packet.properties.responseTopic, 'rpc/reply');
  assert.strictEqual(packet.properties.correlationData.toString(), 'c-1');
  assert.strictEqual(packet.properties.contentType, 'text/plain');
  assert.deepStrictEqual({ ...packet.properties.userProperties }, { app: 'demo' });
});

test('wss:// with a self-signed certificate', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'midge-wss-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
    '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  const broker = await startBroker(['--https', '127.0.0.1:0', '--cert', cert, '--key', key]);
  t.after(() => broker.stop());
  const ca = fs.readFileSync(cert);
  const url = `wss://localhost:${broker.urls.wss.port}/mqtt`;
  await roundTrip(url, url, { ca });
  // A client that does not trust the certificate is refused.
  const bad = mqtt.connect(url, { reconnectPeriod: 0, rejectUnauthorized: true });
  const [err] = await once(bad, 'error');
  assert.match(String(err), /self[- ]signed|certificate/i);
  bad.end(true);
});
