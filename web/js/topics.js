// The Topics tab: the live topic tree (counts, rates, last payloads), a
// search box, and for the selected topic its last message and a live chart
// of each numeric field of its payloads.
import { $, el, setText, fmtNumber, fmtCount, fmtBytes, fmtTime, truncate } from './dom.js';
import { LiveChart, PALETTE } from './chart.js';

const MAX_ROWS = 1500;
const DEFAULT_LIMIT = 2000;
const collator = new Intl.Collator(undefined, { numeric: true });

export class TopicsView {
  constructor(root, tree, monitor) {
    this.root = root;
    this.tree = tree;
    this.monitor = monitor;
    this.list = $('#topic-tree', root);
    this.summary = $('#topic-summary', root);
    this.search = $('#topic-search', root);
    this.detail = $('#topic-detail', root);
    this.expanded = new Set();
    this.collapsed = new Set();
    this.selected = null;
    this.charts = []; // one LiveChart per numeric field of the selected topic
    this.chartFields = '';
    this.rows = new Map(); // key -> row elements, reused between renders
    this.used = new Set();

    this.list.addEventListener('click', (e) => {
      const row = e.target.closest('button[data-path]');
      if (row) this.activate(row.dataset.path, row.dataset.topic === '1');
    });
    this.list.addEventListener('keydown', (e) => this.onKey(e));
    this.search.addEventListener('input', () => this.render(true));
    $('#topic-filter-form', root).addEventListener('submit', (e) => {
      e.preventDefault();
      const f = $('#topic-filter', root).value.trim() || '#';
      this.tree.clear();
      this.select(null);
      this.monitor.setTreeFilter(f);
      this.render(true);
    });
    this.pauseButton = $('#topic-pause', root);
    this.notice = $('#topic-notice', root);
    this.pauseButton.addEventListener('click', () => {
      this.setPaused(this.pauseButton.getAttribute('aria-pressed') !== 'true');
    });
    // Messages per second above which the tree pauses itself (the page
    // would fall behind, and the broker would drop messages queued for it);
    // `?tree-limit=N` in the page's URL changes it.
    const limit = Number(new URLSearchParams(location.search).get('tree-limit'));
    this.limit = Number.isFinite(limit) && limit > 0 ? limit : DEFAULT_LIMIT;
    this.overloaded = 0;
    $('#topic-clear', root).addEventListener('click', () => {
      this.tree.clear();
      this.select(null);
      this.render(true);
    });
  }

  setPaused(paused, why = '') {
    this.pauseButton.setAttribute('aria-pressed', String(paused));
    this.pauseButton.textContent = paused ? 'Resume' : 'Pause';
    this.root.dataset.paused = String(paused);
    setText(this.notice, paused ? why || 'Paused: the tree is not subscribed; Resume to follow the topics again.' : '');
    this.monitor.setPaused(paused);
  }

  /** Called once a second with the messages received in it. */
  checkLoad(perSecond) {
    this.overloaded = perSecond > this.limit ? this.overloaded + 1 : 0;
    if (this.overloaded >= 2 && !this.monitor.paused) {
      this.setPaused(true, `Paused by itself: more than ${fmtCount(this.limit)} messages per second arrived for the tree, more than a browser page should draw. Narrow the subscription (for example sensors/#) and press Resume.`);
    }
  }

  isOpen(node, depth) {
    if (this.expanded.has(node.path)) return true;
    return depth < 2 && !this.collapsed.has(node.path);
  }

  activate(path, isTopic) {
    const node = this.find(path);
    if (!node) return;
    if (node.children.size) {
      const depth = path.split('/').length - 1;
      if (this.isOpen(node, depth)) {
        this.expanded.delete(path);
        this.collapsed.add(path);
      } else {
        this.collapsed.delete(path);
        this.expanded.add(path);
      }
    }
    if (isTopic) this.select(path);
    this.render(true);
  }

  find(path) {
    let node = this.tree.root;
    for (const level of path.split('/')) {
      node = node.children.get(level);
      if (!node) return null;
    }
    return node;
  }

  /** Up/Down move between rows, Left/Right collapse/expand, as in a file tree. */
  onKey(e) {
    const row = e.target.closest('button[data-path]');
    if (!row) return;
    const rows = [...this.list.querySelectorAll('button[data-path]')];
    const i = rows.indexOf(row);
    const path = row.dataset.path;
    if (e.key === 'ArrowDown' && i + 1 < rows.length) rows[i + 1].focus();
    else if (e.key === 'ArrowUp' && i > 0) rows[i - 1].focus();
    else if (e.key === 'Home') rows[0].focus();
    else if (e.key === 'End') rows[rows.length - 1].focus();
    else if ((e.key === 'ArrowRight' || e.key === 'ArrowLeft') && row.getAttribute('aria-expanded') !== null) {
      const open = row.getAttribute('aria-expanded') === 'true';
      if ((e.key === 'ArrowRight') !== open) this.activate(path, false);
    } else return;
    e.preventDefault();
  }

  destroyCharts() {
    for (const c of this.charts) c.destroy();
    this.charts = [];
    this.chartFields = '';
  }

  select(path) {
    this.selected = path;
    this.destroyCharts();
    this.renderDetail();
  }

  /**
   * Redraws when visible (`force`: even when hidden). Rows are kept per
   * path and updated in place, so a click or keyboard focus survives the
   * once-a-second refresh.
   */
  render(force = false) {
    if (!force && this.root.hidden) return;
    const now = Date.now();
    const focused = document.activeElement && this.list.contains(document.activeElement) ? document.activeElement.dataset.path : null;
    const q = this.search.value.trim();
    this.used = new Set();
    if (q) {
      const rows = this.tree.search(q, MAX_ROWS).map((stat) => this.row(`?${stat.topic}`, stat.topic, stat.topic, stat, stat.count, null, now));
      this.list.replaceChildren(...rows);
    } else {
      const budget = { left: MAX_ROWS };
      this.list.replaceChildren(...this.children(this.tree.root, 0, now, budget));
    }
    for (const key of this.rows.keys()) if (!this.used.has(key)) this.rows.delete(key);
    let text = `${fmtCount(this.tree.topics.size)} topics, ${fmtCount(this.tree.total)} messages`;
    if (this.tree.ignored) text += ` (${fmtCount(this.tree.ignored)} to topics past the first ${fmtCount(this.tree.maxTopics)} not tracked)`;
    if (this.used.size >= MAX_ROWS) text += `; showing the first ${fmtCount(MAX_ROWS)} rows`;
    setText(this.summary, text);
    if (focused !== null && !(document.activeElement && this.list.contains(document.activeElement))) {
      const again = [...this.rows.values()].find((r) => r.button.dataset.path === focused && r.button.isConnected);
      if (again) again.button.focus();
    }
    this.renderDetail(now);
  }

  children(node, depth, now, budget) {
    const kids = [...node.children.values()].sort((a, b) => collator.compare(a.name, b.name));
    const items = [];
    for (const child of kids) {
      if (budget.left <= 0) break;
      budget.left -= 1;
      const open = child.children.size ? this.isOpen(child, depth) : null;
      const li = this.row(child.path, child.path, child.name === '' ? '(empty)' : child.name, child.stat, child.count, open, now);
      const r = this.rows.get(child.path);
      if (open) {
        r.group.replaceChildren(...this.children(child, depth + 1, now, budget));
        if (!r.group.isConnected || r.group.parentNode !== li) li.append(r.group);
      } else if (r.group.parentNode) {
        r.group.remove();
      }
      items.push(li);
    }
    return items;
  }

  /** The row for `key` (a path, or "?topic" in search results), made once and updated. */
  row(key, path, label, stat, count, open, now) {
    this.used.add(key);
    let r = this.rows.get(key);
    if (!r) {
      r = {
        twisty: el('span', { class: 'twisty', 'aria-hidden': 'true' }),
        name: el('span', { class: 'name' }, label),
        count: el('span', { class: 'count', title: 'messages' }),
        rate: el('span', { class: 'rate', title: 'messages per second, last 10 s' }),
        payload: el('span', { class: 'payload' }),
        group: el('ul', {}),
      };
      r.button = el('button', { type: 'button', class: 'tree-row', dataset: { path, topic: '0' } }, r.twisty, r.name, r.count, r.rate, r.payload);
      r.li = el('li', {}, r.button);
      this.rows.set(key, r);
    }
    const b = r.button;
    const selected = path === this.selected;
    b.classList.toggle('selected', selected);
    if (selected) b.setAttribute('aria-current', 'true');
    else b.removeAttribute('aria-current');
    if (open === null) b.removeAttribute('aria-expanded');
    else b.setAttribute('aria-expanded', String(open));
    b.dataset.topic = stat ? '1' : '0';
    setText(r.twisty, open === null ? '' : open ? '▾' : '▸');
    setText(r.count, fmtCount(count));
    setText(r.rate, stat ? `${fmtNumber(stat.rate(now))}/s` : '');
    setText(r.payload, stat ? truncate(stat.preview, 80) : '');
    return r.li;
  }

  renderDetail(now = Date.now()) {
    const d = this.detail;
    const stat = this.selected === null ? null : this.tree.topics.get(this.selected);
    if (!stat) {
      d.dataset.topic = '';
      setText($('#detail-topic', d), 'Select a topic');
      $('#detail-meta', d).replaceChildren();
      setText($('#detail-payload', d), 'Pick a topic in the tree to see its last message and a chart of its numeric fields.');
      $('#detail-fields', d).replaceChildren();
      return;
    }
    d.dataset.topic = stat.topic;
    setText($('#detail-topic', d), stat.topic);
    const l = stat.last;
    const meta = [
      ['Messages', fmtCount(stat.count)],
      ['Rate', `${fmtNumber(stat.rate(now))}/s`],
      ['Last', l ? `${fmtTime(new Date(l.time))} · ${fmtBytes(l.size)} · QoS ${l.qos}${l.retain ? ' · retained' : ''}` : '–'],
    ];
    $('#detail-meta', d).replaceChildren(...meta.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
    setText($('#detail-payload', d), l ? payloadDisplay(l) : '');
    this.renderFields(stat);
  }

  renderFields(stat) {
    const box = $('#detail-fields', this.detail);
    const h = stat.history;
    const names = [...h.fields.keys()];
    if (!names.length) {
      this.destroyCharts();
      box.replaceChildren(el('p', { class: 'hint' }, 'No numeric fields in this topic\'s payloads, so nothing to chart.'));
      return;
    }
    const key = names.join('\n');
    if (this.chartFields !== key) {
      this.destroyCharts();
      const table = el('table', { class: 'fields' },
        el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Field'), el('th', { scope: 'col', class: 'num' }, 'Last'), el('th', { scope: 'col', class: 'num' }, 'Min'), el('th', { scope: 'col', class: 'num' }, 'Max'))),
        el('tbody'));
      const grid = el('div', { class: 'field-charts', id: 'field-charts', dataset: { fields: names.join(',') } });
      box.replaceChildren(table, grid);
      // One small chart per field: fields rarely share a scale.
      this.charts = names.map((name, i) => {
        const chartBox = el('div', { class: 'chart' });
        grid.append(el('figure', { class: 'field-chart', dataset: { field: name }, 'aria-label': `Chart of ${name}` }, el('figcaption', {}, name), chartBox));
        return new LiveChart(chartBox, [{ label: name, color: PALETTE[i % PALETTE.length] }], { height: 130, format: (n) => fmtNumber(n, 2), legend: false });
      });
      this.chartFields = key;
    }
    const rows = names.map((name) => {
      const col = h.fields.get(name).filter((v) => v !== null);
      const last = col.length ? col[col.length - 1] : null;
      return el('tr', { dataset: { field: name } },
        el('th', { scope: 'row' }, name),
        el('td', { class: 'num', dataset: { value: last ?? '' } }, fmtNumber(last, 2)),
        el('td', { class: 'num' }, fmtNumber(col.length ? Math.min(...col) : null, 2)),
        el('td', { class: 'num' }, fmtNumber(col.length ? Math.max(...col) : null, 2)));
    });
    $('tbody', box).replaceChildren(...rows);
    const t = h.t.slice();
    names.forEach((name, i) => this.charts[i].setData([t, h.fields.get(name).slice()]));
    $('#field-charts', box).dataset.points = String(h.t.length);
  }
}

function payloadDisplay(last) {
  if (last.text === null) return `${last.size} bytes, not UTF-8:\n${last.hex}`;
  let text = last.text;
  const t = text.trim();
  if (t.startsWith('{') || t.startsWith('[')) {
    try {
      text = JSON.stringify(JSON.parse(t), null, 2);
    } catch {
      // Not JSON after all: show it as it came.
    }
  }
  return last.truncated ? `${text}\n… (first 16 KiB shown)` : text;
}
