// The topics seen, as a tree of levels: per topic its message count, recent
// rate, last payload, and a short history of the numbers in its payloads
// (a plain number, or the numeric fields of a JSON object). No DOM here.
import { payloadText, hexPreview } from './dom.js';

const RATE_WINDOW_MS = 10_000;
const RATE_SLOTS = 64;
const MAX_FIELDS = 12;
const MAX_PAYLOAD_TEXT = 16_384;

/**
 * The numbers in a payload: a bare number is the field "value"; a JSON
 * object gives its numeric fields, nested ones as "a.b" (booleans too, as
 * 0/1). Anything else: null.
 */
/**
 * Whether MQTT topic filter `filter` matches topic name `topic`: `+` one
 * level, `#` the rest (the parent level included), and a wildcard first
 * level never matches a `$` topic. A shared filter matches as its topic
 * filter.
 */
export function topicMatches(filter, topic) {
  const shared = /^\$share\/[^/]+\/(.*)$/.exec(filter);
  const f = (shared ? shared[1] : filter).split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i += 1) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

export function numericFields(text) {
  if (text === null) return null;
  const t = text.trim();
  if (t === '') return null;
  if (/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(t)) {
    const n = Number(t);
    return Number.isFinite(n) ? new Map([['value', n]]) : null;
  }
  if (t[0] !== '{') return null;
  let obj;
  try {
    obj = JSON.parse(t);
  } catch {
    return null;
  }
  const out = new Map();
  const walk = (o, prefix, depth) => {
    for (const [k, v] of Object.entries(o)) {
      if (out.size >= MAX_FIELDS) return;
      const name = prefix ? `${prefix}.${k}` : k;
      if (typeof v === 'number' && Number.isFinite(v)) out.set(name, v);
      else if (typeof v === 'boolean') out.set(name, v ? 1 : 0);
      else if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v)) && /^[-+\d.eE\s]+$/.test(v)) out.set(name, Number(v));
      else if (v && typeof v === 'object' && !Array.isArray(v) && depth < 3) walk(v, name, depth + 1);
    }
  };
  if (obj && typeof obj === 'object' && !Array.isArray(obj)) walk(obj, '', 0);
  return out.size ? out : null;
}

/** One topic's statistics. */
export class TopicStat {
  constructor(topic, historyLength) {
    this.topic = topic;
    this.count = 0;
    this.live = 0; // messages counted in the rate
    this.bytes = 0;
    this.times = new Float64Array(RATE_SLOTS);
    this.last = null; // {text, binary, size, retain, qos, time}
    this.historyLength = historyLength;
    this.history = { t: [], fields: new Map() }; // field -> values aligned with t
  }

  add(payload, { retain = false, qos = 0, time = Date.now() } = {}) {
    // A message that arrives with the retain flag is a stored one, sent
    // because we subscribed: not traffic, so not in the rate.
    if (!retain) {
      this.times[this.live % RATE_SLOTS] = time;
      this.live += 1;
    }
    this.count += 1;
    this.bytes += payload.length;
    const text = payloadText(payload);
    this.last = {
      text: text === null ? null : text.slice(0, MAX_PAYLOAD_TEXT),
      truncated: text !== null && text.length > MAX_PAYLOAD_TEXT,
      hex: text === null ? hexPreview(payload, 256) : null,
      size: payload.length,
      retain,
      qos,
      time,
    };
    const fields = numericFields(text);
    if (fields) this.record(time, fields);
  }

  record(time, fields) {
    const h = this.history;
    h.t.push(time / 1000);
    for (const [name, v] of fields) {
      if (!h.fields.has(name)) {
        if (h.fields.size >= MAX_FIELDS) continue;
        h.fields.set(name, new Array(h.t.length - 1).fill(null));
      }
    }
    for (const [name, col] of h.fields) col.push(fields.has(name) ? fields.get(name) : null);
    if (h.t.length > this.historyLength) {
      h.t.shift();
      for (const col of h.fields.values()) col.shift();
    }
  }

  /** Messages per second over the last 10 s. */
  rate(now = Date.now()) {
    const n = Math.min(this.live, RATE_SLOTS);
    if (n === 0) return 0;
    let recent = 0;
    let oldest = now;
    for (let i = 0; i < n; i += 1) {
      const t = this.times[i];
      if (now - t <= RATE_WINDOW_MS) {
        recent += 1;
        if (t < oldest) oldest = t;
      }
    }
    // Every slot recent: faster than the ring can cover; use its span.
    if (recent === RATE_SLOTS) return (RATE_SLOTS - 1) / Math.max((now - oldest) / 1000, 0.001);
    return recent / (RATE_WINDOW_MS / 1000);
  }

  /** The last payload, short, for lists. */
  get preview() {
    if (!this.last) return '';
    if (this.last.text === null) return `(${this.last.size} bytes binary)`;
    return this.last.text.replace(/\s+/g, ' ');
  }
}

/** A level of the tree. */
class Node {
  constructor(name, path) {
    this.name = name;
    this.path = path;
    this.children = new Map();
    this.count = 0; // messages in this subtree
    this.stat = null; // set when a message was published to exactly this path
  }
}

export class TopicTree {
  constructor({ maxTopics = 10_000, historyLength = 300 } = {}) {
    this.maxTopics = maxTopics;
    this.historyLength = historyLength;
    this.clear();
  }

  clear() {
    this.root = new Node('', '');
    this.topics = new Map();
    this.ignored = 0; // messages to topics beyond maxTopics
    this.total = 0;
    this.version = 0; // bumped on every change, for renderers
  }

  add(topic, payload, meta) {
    let stat = this.topics.get(topic);
    if (!stat) {
      if (this.topics.size >= this.maxTopics) {
        this.ignored += 1;
        return null;
      }
      stat = new TopicStat(topic, this.historyLength);
      this.topics.set(topic, stat);
      let node = this.root;
      let path = '';
      for (const level of topic.split('/')) {
        path = node === this.root ? level : `${path}/${level}`;
        let child = node.children.get(level);
        if (!child) {
          child = new Node(level, path);
          node.children.set(level, child);
        }
        node = child;
      }
      node.stat = stat;
    }
    stat.add(payload, meta);
    this.total += 1;
    this.version += 1;
    let node = this.root;
    node.count += 1;
    for (const level of topic.split('/')) {
      node = node.children.get(level);
      node.count += 1;
    }
    return stat;
  }

  /** The `n` topics with the highest recent rate (ties: most messages). */
  busiest(now, n) {
    const all = [];
    for (const stat of this.topics.values()) {
      const rate = stat.rate(now);
      if (rate > 0) all.push({ stat, rate });
    }
    all.sort((a, b) => b.rate - a.rate || b.stat.count - a.stat.count);
    return all.slice(0, n);
  }

  /** Topics whose name contains `text` (case-insensitive), sorted, at most `limit`. */
  search(text, limit) {
    const q = text.toLowerCase();
    const out = [];
    for (const stat of this.topics.values()) {
      if (stat.topic.toLowerCase().includes(q)) out.push(stat);
    }
    out.sort((a, b) => (a.topic < b.topic ? -1 : 1));
    return out.slice(0, limit);
  }
}
