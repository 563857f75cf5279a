// The Clients tab: the connected clients from the management API
// (`GET /api/v1/clients`, admins), with a disconnect button
// (`DELETE /api/v1/clients/{id}`). Without the API (not signed in as an
// admin, or a broker without it) it shows the client counts from $SYS and
// says why the table is missing.
import { $, el, setText, fmtCount, fmtDuration, fmtTime } from './dom.js';

const REFRESH_MS = 3000;
const CONFIRM_MS = 5000;

export class ClientsView {
  constructor(root, session, stats, ownIds) {
    this.root = root;
    this.session = session;
    this.stats = stats;
    this.ownIds = ownIds; // () => client ids of this page's own connections
    this.body = $('#clients-table tbody', root);
    this.note = $('#clients-note', root);
    this.actionStatus = $('#clients-action', root);
    this.summary = $('#clients-summary', root);
    this.timer = null;
    this.armed = null; // the id whose Disconnect was pressed once
    this.mode = 'unknown';
    this.body.addEventListener('click', (e) => {
      const b = e.target.closest('button[data-kick]');
      if (b) this.kick(b.dataset.kick, b);
    });
    $('#clients-refresh', root).addEventListener('click', () => this.refresh());
    stats.addEventListener('sample', () => this.renderSummary());
  }

  /** Starts refreshing while the tab is shown. */
  show() {
    this.refresh();
  }

  hide() {
    clearTimeout(this.timer);
    this.timer = null;
  }

  async refresh() {
    clearTimeout(this.timer);
    this.timer = null;
    if (!this.session.creds) {
      this.fallback('Sign in as an admin (a user in http.admins) to see each client: the table comes from the management API, GET /api/v1/clients. Meanwhile, the counts above come from $SYS.');
    } else {
      const r = await this.session.api('/api/v1/clients');
      if (r.ok && r.data && Array.isArray(r.data.clients)) {
        this.mode = 'api';
        this.root.dataset.mode = 'api';
        setText(this.note, `From GET /api/v1/clients at ${fmtTime(new Date())}, every ${REFRESH_MS / 1000} s.`);
        this.render(r.data.clients);
      } else if (r.status === 403) {
        this.fallback(`${this.session.username} is not an admin, so the client table (GET /api/v1/clients) is not available; the counts above come from $SYS.`);
      } else if (r.status === 404) {
        this.fallback('This broker has no management API (GET /api/v1/clients answered 404); the counts above come from $SYS.');
      } else {
        this.fallback(`The management API did not answer (${r.error}); the counts above come from $SYS.`);
      }
    }
    if (!this.root.hidden) this.timer = setTimeout(() => this.refresh(), REFRESH_MS);
  }

  fallback(text) {
    this.mode = 'sys';
    this.root.dataset.mode = 'sys';
    setText(this.note, text);
    this.body.replaceChildren(el('tr', {}, el('td', { colspan: 8, class: 'empty' }, 'No client table without the management API.')));
  }

  renderSummary() {
    const p = this.stats.latest;
    if (!p) return;
    setText(this.summary, `${fmtCount(p.clients)} connected · ${fmtCount(p.clientsDisconnected)} disconnected with a kept session · ${fmtCount(p.clientsTotal)} total · ${fmtCount(p.clientsMaximum)} at most · ${fmtCount(p.subscriptions)} subscriptions`);
  }

  render(clients) {
    const own = new Set(this.ownIds());
    const now = Date.now() / 1000;
    clients.sort((a, b) => String(a.id).localeCompare(String(b.id), undefined, { numeric: true }));
    const rows = clients.map((c) => {
      const subs = Object.entries(c.subscriptions || {});
      const tags = [c.internal ? 'internal' : null, own.has(c.id) ? 'this page' : null].filter(Boolean).join(', ');
      const armed = this.armed === c.id;
      return el('tr', { dataset: { client: c.id } },
        el('th', { scope: 'row', class: 'id' }, String(c.id), tags ? el('span', { class: 'tag' }, ` (${tags})`) : null),
        el('td', {}, c.username ?? '–'),
        el('td', {}, c.address ?? '–'),
        el('td', {}, `${c.protocol ?? '?'} · ${c.listener ?? ''}`),
        el('td', { title: c.connected_since ? new Date(c.connected_since * 1000).toLocaleString() : '' }, c.connected_since ? fmtDuration(now - c.connected_since) : '–'),
        el('td', { class: 'num', title: subs.map(([f, q]) => `${f} (QoS ${q})`).join('\n') }, fmtCount(subs.length)),
        el('td', { class: 'num' }, fmtCount(c.drops ?? 0)),
        el('td', {}, el('button', {
          type: 'button',
          class: `small${armed ? ' danger' : ''}`,
          dataset: { kick: c.id },
          'aria-label': armed ? `Confirm: disconnect ${c.id}` : `Disconnect ${c.id}`,
        }, armed ? 'Confirm' : 'Disconnect')));
    });
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 8, class: 'empty' }, 'No clients connected.')));
    // Keep keyboard focus on the same button across refreshes.
    const active = document.activeElement;
    const focused = active && this.body.contains(active) ? active.dataset.kick : undefined;
    this.body.replaceChildren(...rows);
    if (focused !== undefined) {
      const again = [...this.body.querySelectorAll('button[data-kick]')].find((b) => b.dataset.kick === focused);
      if (again) again.focus();
    }
  }

  /** First press arms the button, the second (within 5 s) disconnects. */
  async kick(id, button) {
    if (this.armed !== id) {
      this.armed = id;
      button.textContent = 'Confirm';
      button.classList.add('danger');
      button.setAttribute('aria-label', `Confirm: disconnect ${id}`);
      setTimeout(() => {
        if (this.armed === id) {
          this.armed = null;
          this.refresh();
        }
      }, CONFIRM_MS);
      return;
    }
    this.armed = null;
    const r = await this.session.api(`/api/v1/clients/${encodeURIComponent(id)}`, { method: 'DELETE' });
    if (r.ok) setText(this.actionStatus, `Disconnected ${id}.`);
    else if (r.status === 501) setText(this.actionStatus, `Could not disconnect ${id}: this broker cannot disconnect clients yet (${r.error}).`);
    else setText(this.actionStatus, `Could not disconnect ${id}: ${r.error}.`);
    this.refresh();
  }
}
