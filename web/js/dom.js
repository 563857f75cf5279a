// Small DOM and formatting helpers shared by the views. Everything that
// shows data from the broker goes through textContent (never innerHTML), so
// a topic or payload can never inject markup.

/** `el('td', {class: 'num', title: 'x'}, 'text', childNode)` */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** Sets textContent only when it changed (keeps screen readers calm). */
export function setText(node, text) {
  const t = String(text);
  if (node && node.textContent !== t) node.textContent = t;
}

const units = ['', 'k', 'M', 'G', 'T'];

/** 1234567 -> "1.23M"; small numbers keep up to `digits` decimals. */
export function fmtNumber(n, digits = 1) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  const abs = Math.abs(n);
  if (abs < 1000) return Number.isInteger(n) ? String(n) : n.toFixed(abs < 10 ? digits + 1 : digits).replace(/\.?0+$/, '');
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1000 && i < units.length - 1) { v /= 1000; i += 1; }
  return `${v.toFixed(Math.abs(v) < 10 ? 2 : 1)}${units[i]}`;
}

/** For chart axes: as fmtNumber, without trailing zeros ("5k", "2.5M"). */
export function fmtCompact(n) {
  return fmtNumber(n).replace(/\.0+(?=[kMGT]?$)|(\.\d*?[1-9])0+(?=[kMGT]?$)/, '$1');
}

/** Whole numbers with thousands separators: 1234567 -> "1,234,567". */
export function fmtCount(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  return Math.round(n).toLocaleString('en-US');
}

/** Bytes: 1536 -> "1.5 KiB". */
export function fmtBytes(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < u.length - 1) { v /= 1024; i += 1; }
  return i === 0 ? `${Math.round(v)} B` : `${v.toFixed(Math.abs(v) < 10 ? 2 : 1)} ${u[i]}`;
}

/** Seconds -> "3d 4h", "5h 2m", "4m 10s", "12s". */
export function fmtDuration(secs) {
  if (secs === null || secs === undefined || Number.isNaN(secs)) return '–';
  const s = Math.max(0, Math.floor(secs));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m ${s % 60}s`;
  return `${s}s`;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** Local time of day with milliseconds: "14:03:27.041". */
export function fmtTime(date) {
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/** A payload as text, or `null` when it is not valid UTF-8. */
export function payloadText(bytes) {
  try {
    return decoder.decode(bytes);
  } catch {
    return null;
  }
}

/** Up to `max` bytes as hex: "0a ff 10 …". */
export function hexPreview(bytes, max = 64) {
  const parts = [];
  for (let i = 0; i < Math.min(bytes.length, max); i += 1) parts.push(pad(bytes[i].toString(16)));
  return parts.join(' ') + (bytes.length > max ? ' …' : '');
}

/** Shortens `text` to `max` characters with an ellipsis. */
export function truncate(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** A random suffix for client ids. */
export function randomId(len = 8) {
  const b = new Uint8Array(len);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => (x % 36).toString(36)).join('');
}
