// The dashboard's own MQTT over WebSocket connection: it subscribes to
// `$SYS/broker/#` (the overview) and to the topic tree's filter (default
// `#`), and reports what arrives as events:
//   'status'  detail {state: 'connecting'|'connected'|'offline'|'auth', message}
//   'sys'     detail {name, value}       ($SYS/broker/<name>)
//   'message' detail {topic, payload, retain, qos, time}
//   'sysaccess' detail {allowed: boolean}
import { randomId } from './dom.js';
import { defaultWsUrl } from './session.js';
import { topicMatches } from './topictree.js';

const SYS_FILTER = '$SYS/broker/#';
const SYS_PREFIX = '$SYS/broker/';
// CONNACK refusals that mean "sign in" (3.1.1: 4, 5; 5.0: 0x86, 0x87).
const AUTH_CODES = new Set([4, 5, 134, 135]);

export class Monitor extends EventTarget {
  constructor(session, { url = defaultWsUrl(), treeFilter = '#' } = {}) {
    super();
    this.session = session;
    this.url = url;
    this.treeFilter = treeFilter;
    this.paused = false;
    this.client = null;
    this.clientId = `dash-${randomId(10)}`;
    this.state = 'offline';
  }

  status(state, message = '') {
    this.state = state;
    this.dispatchEvent(new CustomEvent('status', { detail: { state, message } }));
  }

  /** (Re)connects with the session's current credentials. */
  start() {
    this.stop();
    const mqtt = window.mqtt;
    if (!mqtt) {
      this.status('offline', 'MQTT.js did not load');
      return;
    }
    this.status('connecting', this.url);
    const client = mqtt.connect(this.url, {
      clientId: this.clientId,
      protocolVersion: 5,
      clean: true,
      keepalive: 30,
      reconnectPeriod: 2000,
      connectTimeout: 8000,
      ...this.session.mqttAuth(),
    });
    this.client = client;
    client.on('connect', () => {
      if (this.client !== client) return;
      this.status('connected', this.url);
      this.subscribeAll();
    });
    client.on('reconnect', () => {
      if (this.client === client) this.status('connecting', this.url);
    });
    client.on('close', () => {
      if (this.client === client && this.state === 'connected') this.status('offline', 'connection lost; retrying');
    });
    client.on('error', (err) => {
      if (this.client !== client) return;
      if (AUTH_CODES.has(err && err.code)) {
        // Retrying with the same credentials cannot help.
        client.end(true);
        this.client = null;
        this.status('auth', this.session.username ? 'the broker refused these credentials' : 'the broker asks for a username and password');
      } else {
        this.status('offline', (err && err.message) || 'connection error');
      }
    });
    client.on('message', (topic, payload, packet) => {
      const detail = { topic, payload, retain: !!packet.retain, qos: packet.qos, time: Date.now() };
      if (topic.startsWith(SYS_PREFIX)) {
        this.dispatchEvent(new CustomEvent('sys', { detail: { name: topic.slice(SYS_PREFIX.length), value: payload.toString() } }));
        if (!this.treeFilter.startsWith('$')) return;
      }
      // Pausing and a new filter unsubscribe without waiting for the
      // broker's answer: what was already on its way for the tree, or for
      // its old filter, is dropped here.
      if (this.paused || !topicMatches(this.treeFilter, topic)) return;
      this.dispatchEvent(new CustomEvent('message', { detail }));
    });
  }

  stop() {
    if (this.client) {
      const c = this.client;
      this.client = null;
      c.end(true);
    }
  }

  subscribeAll() {
    const client = this.client;
    if (!client) return;
    client.subscribe(SYS_FILTER, { qos: 0 }, (err, granted) => {
      const allowed = !err && !!granted && granted.every((g) => g.qos < 128);
      this.dispatchEvent(new CustomEvent('sysaccess', { detail: { allowed } }));
    });
    if (!this.paused && this.treeFilter) this.subscribeTree();
  }

  subscribeTree() {
    if (!this.client) return;
    this.client.subscribe(this.treeFilter, { qos: 0 }, (err, granted) => {
      const ok = !err && !!granted && granted.every((g) => g.qos < 128);
      this.dispatchEvent(new CustomEvent('treeaccess', { detail: { allowed: ok, filter: this.treeFilter } }));
    });
  }

  /** Changes the topic tree's subscription. */
  setTreeFilter(filter) {
    if (this.client && this.client.connected && !this.paused && this.treeFilter) this.client.unsubscribe(this.treeFilter);
    this.treeFilter = filter;
    if (this.client && this.client.connected && !this.paused) this.subscribeTree();
  }

  /** Pausing unsubscribes the tree's filter, so a busy broker stops sending. */
  setPaused(paused) {
    if (paused === this.paused) return;
    this.paused = paused;
    if (!this.client || !this.client.connected) return;
    if (paused) this.client.unsubscribe(this.treeFilter);
    else this.subscribeTree();
  }
}
