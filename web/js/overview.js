// The Overview tab: the broker's vital numbers as cards, live charts of the
// last minutes, and the busiest topics the topic tree has seen.
import { $, el, setText, fmtNumber, fmtCompact, fmtCount, fmtBytes, fmtDuration, truncate } from './dom.js';
import { LiveChart } from './chart.js';

const perSec = (n) => fmtNumber(n);
const bytesPerSec = (n) => `${fmtBytes(n)}/s`;

export class OverviewView {
  constructor(root, stats, tree) {
    this.root = root;
    this.stats = stats;
    this.tree = tree;
    this.cards = new Map([...root.querySelectorAll('[data-stat]')].map((n) => [n.dataset.stat, n]));
    this.charts = [
      { chart: new LiveChart($('#chart-clients', root), [{ label: 'connected' }], { format: (n) => fmtNumber(n, 0), axisFormat: fmtCompact }), keys: ['clients'] },
      { chart: new LiveChart($('#chart-messages', root), [{ label: 'in' }, { label: 'out' }], { format: perSec, axisFormat: fmtCompact }), keys: ['msgsInRate', 'msgsOutRate'] },
      { chart: new LiveChart($('#chart-bytes', root), [{ label: 'in' }, { label: 'out' }], { format: bytesPerSec, axisFormat: (n) => `${fmtCompact(n)}B` }), keys: ['bytesInRate', 'bytesOutRate'] },
      { chart: new LiveChart($('#chart-dropped', root), [{ label: 'dropped', color: '--bad' }], { format: perSec, axisFormat: fmtCompact }), keys: ['droppedRate'] },
    ];
    this.busiest = $('#busiest tbody', root);
    this.source = $('#stats-source', root);
    stats.addEventListener('sample', () => this.renderStats());
  }

  setSource(text) {
    setText(this.source, text);
  }

  renderStats() {
    const p = this.stats.latest;
    if (!p) return;
    const put = (key, text, title) => {
      const n = this.cards.get(key);
      if (!n) return;
      setText(n, text);
      if (title !== undefined) n.title = title;
    };
    put('clients', fmtCount(p.clients), `total ${fmtCount(p.clientsTotal)}, maximum ${fmtCount(p.clientsMaximum)}`);
    put('clients-detail', `connected · peak ${fmtCount(p.clientsMaximum)}`);
    put('msgs-in', p.msgsInRate === null ? '…' : perSec(p.msgsInRate));
    put('msgs-out', p.msgsOutRate === null ? '…' : perSec(p.msgsOutRate));
    put('msgs-in-total', `${fmtCount(p.msgsIn)} PUBLISH total`);
    put('msgs-out-total', `${fmtCount(p.msgsOut)} PUBLISH total`);
    put('bytes-in', p.bytesInRate === null ? '…' : bytesPerSec(p.bytesInRate));
    put('bytes-out', p.bytesOutRate === null ? '…' : bytesPerSec(p.bytesOutRate));
    put('bytes-in-total', `${fmtBytes(p.bytesIn)} total`);
    put('bytes-out-total', `${fmtBytes(p.bytesOut)} total`);
    put('dropped', fmtCount(p.dropped));
    put('dropped-rate', p.droppedRate === null ? 'messages, total' : `messages, ${perSec(p.droppedRate)}/s now`);
    put('retained', fmtCount(p.retained));
    put('subscriptions', fmtCount(p.subscriptions));
    put('uptime', fmtDuration(p.uptime));
    for (const { chart, keys } of this.charts) chart.setData(this.stats.columns(keys));
    this.root.dataset.samples = String(this.stats.points.length);
  }

  /** The busiest topics by recent rate (called on the page's render tick). */
  renderBusiest(now) {
    const top = this.tree.busiest(now, 8);
    const rows = top.map(({ stat, rate }) => el('tr', {},
      el('td', { class: 'topic' }, stat.topic),
      el('td', { class: 'num' }, `${fmtNumber(rate)}/s`),
      el('td', { class: 'num' }, fmtCount(stat.count)),
      el('td', { class: 'payload' }, truncate(stat.preview, 60))));
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 4, class: 'empty' }, 'No messages yet. Publish something, or start examples/sensor-fleet.py.')));
    this.busiest.replaceChildren(...rows);
  }
}
