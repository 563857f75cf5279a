// Broker statistics over time: samples of the broker's counters, from
// `$SYS/broker/...` (Mosquitto's names, every sys_interval) or from
// `GET /api/v1/stats` (polled when the signed-in user may read it), turned
// into rates and kept for the last `windowSecs` for the charts.

/** The $SYS values (name below $SYS/broker/ -> text) as a sample. */
export function sampleFromSys(values, time) {
  const num = (name) => {
    const v = values.get(name);
    if (v === undefined) return null;
    const n = parseFloat(v);
    return Number.isFinite(n) ? n : null;
  };
  return {
    time,
    clients: num('clients/connected'),
    clientsTotal: num('clients/total'),
    clientsMaximum: num('clients/maximum'),
    clientsDisconnected: num('clients/disconnected'),
    msgsIn: num('publish/messages/received'),
    msgsOut: num('publish/messages/sent'),
    bytesIn: num('bytes/received'),
    bytesOut: num('bytes/sent'),
    dropped: num('publish/messages/dropped'),
    retained: num('retained messages/count'),
    subscriptions: num('subscriptions/count'),
    stored: num('messages/stored'),
    uptime: num('uptime'), // "123 seconds"
  };
}

/** A `GET /api/v1/stats` body as a sample. */
export function sampleFromApi(j, time) {
  const n = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  return {
    time,
    clients: n(j.clients_connected),
    clientsTotal: n(j.clients_total),
    clientsMaximum: n(j.clients_maximum),
    clientsDisconnected: n(j.clients_disconnected),
    msgsIn: n(j.publish_received),
    msgsOut: n(j.publish_sent),
    bytesIn: n(j.bytes_received),
    bytesOut: n(j.bytes_sent),
    dropped: n(j.publish_dropped),
    retained: n(j.retained),
    subscriptions: n(j.subscriptions),
    stored: n(j.messages_stored),
    uptime: n(j.uptime_secs),
  };
}

const RATES = [['msgsIn', 'msgsInRate'], ['msgsOut', 'msgsOutRate'], ['bytesIn', 'bytesInRate'], ['bytesOut', 'bytesOutRate'], ['dropped', 'droppedRate']];

/** Per-second rates between two samples; null where unknown or the counter went back (restart). */
export function rates(prev, cur) {
  const out = {};
  const dt = prev ? (cur.time - prev.time) / 1000 : 0;
  for (const [counter, rate] of RATES) {
    const a = prev ? prev[counter] : null;
    const b = cur[counter];
    out[rate] = dt > 0 && a !== null && b !== null && b >= a ? (b - a) / dt : null;
  }
  return out;
}

/** Samples and their rates, trimmed to the last `windowSecs`. Emits 'sample'. */
export class StatsModel extends EventTarget {
  constructor({ windowSecs = 600 } = {}) {
    super();
    this.windowSecs = windowSecs;
    this.points = []; // {...sample, ...rates}
    this.source = null; // 'sys' | 'api'
  }

  get latest() {
    return this.points.length ? this.points[this.points.length - 1] : null;
  }

  add(sample, source) {
    if (source !== this.source) {
      // Counters from two sources are not comparable sample to sample.
      this.source = source;
      this.points = [];
    }
    const prev = this.latest;
    if (prev && sample.time <= prev.time) return;
    const point = { ...sample, ...rates(prev, sample) };
    this.points.push(point);
    const oldest = sample.time - this.windowSecs * 1000;
    while (this.points.length > 2 && this.points[0].time < oldest) this.points.shift();
    this.dispatchEvent(new CustomEvent('sample', { detail: point }));
  }

  /** Columns for a chart: [times in seconds, ...one array per key]. */
  columns(keys) {
    return [this.points.map((p) => p.time / 1000), ...keys.map((k) => this.points.map((p) => p[k]))];
  }
}

/**
 * Gathers `$SYS/broker/...` values. The broker publishes them all at once
 * every sys_interval; a sample is taken once a burst has settled.
 */
export class SysCollector {
  constructor(onSample, settleMs = 250) {
    this.values = new Map();
    this.onSample = onSample;
    this.settleMs = settleMs;
    this.timer = null;
    this.burstStart = 0;
  }

  offer(name, value) {
    this.values.set(name, value);
    if (this.timer === null) this.burstStart = Date.now();
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.onSample(sampleFromSys(this.values, this.burstStart));
    }, this.settleMs);
  }

  get version() {
    return this.values.get('version') || null;
  }
}

/**
 * Polls `GET /api/v1/stats` while it answers 200; calls `onStop(result)`
 * when it does not (no API, not an admin), so the overview falls back to $SYS.
 */
export class ApiPoller {
  constructor(session, onSample, onStop, everyMs = 2000) {
    this.session = session;
    this.onSample = onSample;
    this.onStop = onStop;
    this.everyMs = everyMs;
    this.timer = null;
    this.generation = 0;
  }

  start() {
    this.stop();
    const gen = this.generation;
    const tick = async () => {
      const r = await this.session.api('/api/v1/stats');
      if (gen !== this.generation) return;
      if (r.ok && r.data) {
        this.onSample(sampleFromApi(r.data, Date.now()));
        this.timer = setTimeout(tick, this.everyMs);
      } else if (r.status === 0) {
        // A network hiccup: try again later without giving up.
        this.timer = setTimeout(tick, this.everyMs * 2);
      } else {
        this.onStop(r);
      }
    };
    tick();
  }

  stop() {
    this.generation += 1;
    clearTimeout(this.timer);
    this.timer = null;
  }
}
