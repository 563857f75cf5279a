// Live line charts on uPlot (vendored, global `uPlot`): a time axis, one
// line per series, colours from the page's CSS variables, and a width that
// follows the container.

export const PALETTE = ['--c1', '--c2', '--c3', '--c4', '--c5', '--c6', '--c7', '--c8'];

const pad = (n) => String(n).padStart(2, '0');

/** Seconds since the epoch as local "HH:MM:SS". */
function clock(t) {
  const d = new Date(t * 1000);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function cssVar(name, fallback) {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

export class LiveChart {
  /**
   * @param {HTMLElement} container
   * @param {{label: string, color?: string}[]} series
   * @param {{height?: number, format?: (n: number) => string, axisFormat?: (n: number) => string}} opts
   *   `format` for the legend, `axisFormat` (default: `format`) for the y axis,
   *   `legend: false` to leave the legend out
   */
  constructor(container, series, opts = {}) {
    this.container = container;
    this.series = series;
    this.format = opts.format || ((n) => String(n));
    this.plot = null;
    this.data = [[], ...series.map(() => [])];
    if (!window.uPlot) {
      container.textContent = 'Charts unavailable: uPlot did not load.';
      return;
    }
    const fg = cssVar('--muted', '#667');
    const grid = cssVar('--grid', '#e5e7eb');
    const fmt = this.format;
    const axisFmt = opts.axisFormat || fmt;
    const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    this.plot = new window.uPlot({
      width: this.width(),
      height: opts.height || 180,
      ms: false,
      cursor: { drag: { x: false, y: false } },
      legend: { show: opts.legend !== false, live: true },
      scales: {
        // At least the last minute, so a new chart reads as time of day.
        x: { time: true, range: (u, min, max) => (min === null || max === null ? [Date.now() / 1000 - 60, Date.now() / 1000] : [Math.min(min, max - 60), max]) },
        y: { range: (u, min, max) => [Math.min(0, min ?? 0), max > 0 ? max * 1.1 : 1] },
      },
      axes: [
        { ...axis, space: 70, values: (u, ticks) => ticks.map((t) => clock(t)) },
        {
          ...axis,
          values: (u, ticks) => ticks.map((t) => axisFmt(t)),
          // Wide enough for the longest label.
          size: (u, values) => Math.max(40, 14 + 7.5 * Math.max(0, ...(values || []).map((v) => String(v).length))),
        },
      ],
      series: [
        { label: 'time' },
        ...series.map((s, i) => ({
          label: s.label,
          // uPlot draws on a canvas: it needs a colour, not a CSS variable.
          stroke: cssVar(s.color || PALETTE[i % PALETTE.length], '#0f766e'),
          width: 2,
          spanGaps: true,
          value: (u, v) => (v === null || v === undefined ? '–' : fmt(v)),
        })),
      ],
    }, this.data, container);
    this.resizer = new ResizeObserver(() => this.resize());
    this.resizer.observe(container);
  }

  width() {
    return Math.max(200, Math.floor(this.container.clientWidth || 300));
  }

  resize() {
    if (!this.plot) return;
    const w = this.width();
    if (w !== this.plot.width) this.plot.setSize({ width: w, height: this.plot.height });
  }

  /** Replaces the data: `[xs (seconds), ys1, ys2, ...]`. */
  setData(columns) {
    this.data = columns;
    if (this.plot) this.plot.setData(columns);
  }

  destroy() {
    if (this.resizer) this.resizer.disconnect();
    if (this.plot) this.plot.destroy();
    this.plot = null;
  }
}
