// Who the dashboard acts as: the username and password the user signed in
// with (kept in sessionStorage, so they last as long as the tab), used as
// MQTT credentials on the WebSocket and as HTTP Basic auth on the API.

const KEY = 'midge.dashboard.credentials';

/** The broker's MQTT over WebSocket URL: the page's own host and port, path /mqtt. */
export function defaultWsUrl(loc = window.location) {
  return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/mqtt`;
}

function toBase64(text) {
  const bytes = new TextEncoder().encode(text);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

export class Session extends EventTarget {
  constructor(storage = window.sessionStorage) {
    super();
    this.storage = storage;
    this.creds = null;
    try {
      const saved = JSON.parse(storage.getItem(KEY) || 'null');
      if (saved && typeof saved.username === 'string') this.creds = { username: saved.username, password: String(saved.password ?? '') };
    } catch {
      storage.removeItem(KEY);
    }
  }

  get username() {
    return this.creds ? this.creds.username : null;
  }

  signIn(username, password) {
    this.creds = { username, password };
    this.storage.setItem(KEY, JSON.stringify(this.creds));
    this.dispatchEvent(new Event('change'));
  }

  signOut() {
    this.creds = null;
    this.storage.removeItem(KEY);
    this.dispatchEvent(new Event('change'));
  }

  /** MQTT.js connect options for these credentials. */
  mqttAuth() {
    return this.creds ? { username: this.creds.username, password: this.creds.password } : {};
  }

  /**
   * Calls the HTTP API with Basic auth (when signed in). Never throws:
   * resolves to `{ok, status, data, error}`; status 0 is a network error.
   */
  async api(path, { method = 'GET', timeoutMs = 5000 } = {}) {
    const headers = { Accept: 'application/json' };
    if (this.creds) headers.Authorization = `Basic ${toBase64(`${this.creds.username}:${this.creds.password}`)}`;
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeoutMs);
    try {
      const r = await fetch(path, { method, headers, cache: 'no-store', signal: ctl.signal });
      let data = null;
      const text = await r.text();
      if (text) {
        try { data = JSON.parse(text); } catch { data = null; }
      }
      const error = r.ok ? null : (data && data.error) || `${r.status} ${r.statusText}`;
      return { ok: r.ok, status: r.status, data, error };
    } catch (e) {
      return { ok: false, status: 0, data: null, error: e.name === 'AbortError' ? 'timed out' : String(e.message || e) };
    } finally {
      clearTimeout(timer);
    }
  }
}
