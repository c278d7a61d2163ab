// A small canvas line chart: several series, linear or log axes, EMA smoothing, drag across the
// plot to zoom into a range of x (double-click or Escape resets), a hover read-out of the nearest
// points. No dependencies; redraws on resize.

const PALETTE = ['#1f6fb4', '#c62828', '#2e7d32', '#6a3d9a', '#e66100', '#00838f', '#8c564b',
  '#ad1457', '#5d6d7e', '#9e9d24'];
export const color = (i) => PALETTE[i % PALETTE.length];

/** Exponential moving average with bias correction (as TensorBoard's smoothing slider). */
export function smooth(points, weight) {
  if (!weight) return points;
  const out = [];
  let s = 0;
  let n = 0;
  for (const [x, y] of points) {
    if (!Number.isFinite(y)) { out.push([x, y]); continue; }
    s = weight * s + (1 - weight) * y;
    n += 1;
    out.push([x, s / (1 - weight ** n)]);
  }
  return out;
}

/** At most this many ticks per axis, whatever the range (a guard against degenerate spans). */
const MAX_TICKS = 50;

/** About `count` round tick values covering [lo, hi]. */
function linearTicks(lo, hi, count) {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  const span = hi - lo || Math.abs(hi) || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || 10 * mag;
  const start = Math.ceil(lo / step) * step;
  // An integer counter: `t += step` stalls when step is below the float spacing at t.
  const ticks = [];
  for (let i = 0; i < MAX_TICKS; i++) {
    const t = start + i * step;
    if (t > hi + step * 1e-9) break;
    const rounded = Number(t.toPrecision(12));
    if (ticks.length && rounded === ticks[ticks.length - 1]) break;
    ticks.push(rounded);
  }
  return ticks;
}

/** Ticks for a log axis given [log10 lo, log10 hi]: powers of ten, or linear ticks when narrow. */
function logTicks(lo, hi) {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (hi - lo < 1) return linearTicks(10 ** lo, 10 ** hi, 4).filter((t) => t > 0).map(Math.log10);
  const step = Math.max(1, Math.ceil((hi - lo) / 6));
  const ticks = [];
  for (let e = Math.ceil(lo); e <= Math.floor(hi) && ticks.length < MAX_TICKS; e += step) ticks.push(e);
  return ticks;
}

/** Dash patterns, so that series differ by more than colour. */
const DASHES = [[], [6, 3], [2, 2], [8, 3, 2, 3], [1, 3]];
const DASH_NAMES = ['solid', 'dashed', 'dotted', 'dash-dot', 'sparse dots'];

/** The line style of series `i` of `n`, in words (none for a lone series). */
export const dashName = (i, n) => (n > 1 ? DASH_NAMES[i % DASHES.length] : '');

function tickLabel(v) {
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e4 || a < 1e-2)) return v.toExponential(0).replace('e+', 'e');
  return String(Number(v.toPrecision(3)));
}

export class LineChart {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{title?: string, xLabel?: string, logX?: boolean, logY?: boolean, smoothing?: number,
   *          markers?: boolean, height?: number}} opts
   */
  constructor(canvas, opts = {}) {
    this.canvas = canvas;
    this.opts = { height: 220, ...opts };
    this.series = [];
    this.zoom = null; // [x0, x1] in axis units (log10 of x under log x)
    this.drag = null;
    this.hover = null;
    canvas.tabIndex = 0;
    this.baseLabel = canvas.getAttribute('aria-label');
    canvas.style.height = `${this.opts.height}px`;
    // Listeners end with the chart: `destroy()` (or the canvas leaving the page) aborts them.
    this.abort = new AbortController();
    const on = (target, type, fn) => target.addEventListener(type, fn, { signal: this.abort.signal });
    on(canvas, 'mousedown', (e) => { this.drag = { from: this.px(e), to: this.px(e) }; });
    on(canvas, 'mousemove', (e) => {
      if (this.drag) this.drag.to = this.px(e);
      else this.hover = this.px(e);
      this.draw();
    });
    on(canvas, 'mouseleave', () => { this.hover = null; this.draw(); });
    on(window, 'mouseup', () => this.endDrag());
    on(canvas, 'dblclick', () => this.resetZoom());
    on(canvas, 'keydown', (e) => this.key(e));
    this.resize = new ResizeObserver(() => (canvas.isConnected ? this.draw() : this.destroy()));
    this.resize.observe(canvas);
  }

  destroy() {
    this.abort.abort();
    this.resize.disconnect();
  }

  /** Keyboard zoom and pan: + and − zoom x around the middle, ← and → pan, 0 or Escape reset. */
  key(e) {
    const f = this.frame;
    if (e.key === 'Escape' || e.key === '0') { this.resetZoom(); return; }
    if (!f || !['+', '=', '-', '_', 'ArrowLeft', 'ArrowRight'].includes(e.key)) return;
    e.preventDefault();
    const [a, b] = f.domain;
    const mid = (a + b) / 2;
    const half = (b - a) / 2;
    if (e.key === '+' || e.key === '=') this.setZoom([mid - half / 2, mid + half / 2]);
    else if (e.key === '-' || e.key === '_') this.setZoom([mid - half * 2, mid + half * 2]);
    else this.setZoom(e.key === 'ArrowLeft' ? [a - half / 2, b - half / 2] : [a + half / 2, b + half / 2]);
  }

  /** Zooms to [a, b] in axis units, never narrower than the float spacing allows to draw. */
  setZoom([a, b]) {
    const min = Math.max(Math.abs(a), Math.abs(b), 1) * 1e-9;
    if (!(b - a > min)) return;
    this.zoom = [a, b];
    this.draw();
  }

  px(e) {
    const r = this.canvas.getBoundingClientRect();
    return [e.clientX - r.left, e.clientY - r.top];
  }

  /** @param {{label: string, color?: string, points: [number, number][]}[]} series */
  setSeries(series) {
    this.series = series;
    // The text alternative: what a reader of the chart would take from it at a glance.
    const said = series.map((s) => {
      const pts = s.points.filter(([, y]) => Number.isFinite(y));
      if (!pts.length) return `${s.label}: no finite points`;
      const ys = pts.map(([, y]) => y);
      const [x, y] = pts[pts.length - 1];
      return `${s.label}: ${pts.length} points, last ${tickLabel(y)} at ${tickLabel(x)}, min ${tickLabel(Math.min(...ys))}, max ${tickLabel(Math.max(...ys))}`;
    });
    this.canvas.setAttribute('aria-label', `${this.baseLabel || ''} ${said.join('; ')}`.trim());
    this.draw();
  }

  set(opts) {
    // A zoom is in the axis's units: it means nothing once the x scale changes.
    if ('logX' in opts && opts.logX !== this.opts.logX) this.zoom = null;
    Object.assign(this.opts, opts);
    this.draw();
  }

  resetZoom() { this.zoom = null; this.draw(); }

  endDrag() {
    const d = this.drag;
    this.drag = null;
    if (!d || !this.frame) return;
    if (Math.abs(d.to[0] - d.from[0]) > 4) {
      const [a, b] = [d.from[0], d.to[0]].map((p) => this.frame.invX(p));
      this.setZoom([Math.min(a, b), Math.max(a, b)]);
    }
    this.draw();
  }

  /** Points as drawn: smoothed, on the axes' scales, finite only where the scale allows. */
  prepared() {
    const { logX, logY, smoothing } = this.opts;
    const tx = logX ? Math.log10 : (v) => v;
    const ty = logY ? Math.log10 : (v) => v;
    return this.series.map((s, i) => ({
      label: s.label,
      color: s.color || color(i),
      points: smooth(s.points, smoothing || 0).map(([x, y]) => [tx(x), ty(y), x, y]),
    }));
  }

  draw() {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth;
    const h = this.opts.height;
    if (!w) return;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    g.font = '11px system-ui, sans-serif';
    const series = this.prepared();
    const ok = (p) => Number.isFinite(p[0]) && Number.isFinite(p[1]);
    let [x0, x1] = this.zoom || [Infinity, -Infinity];
    if (!this.zoom) {
      for (const s of series) for (const p of s.points) if (ok(p)) { x0 = Math.min(x0, p[0]); x1 = Math.max(x1, p[0]); }
    }
    let y0 = Infinity;
    let y1 = -Infinity;
    let drawn = 0;
    for (const s of series) {
      for (const p of s.points) {
        if (ok(p) && p[0] >= x0 && p[0] <= x1) { y0 = Math.min(y0, p[1]); y1 = Math.max(y1, p[1]); drawn += 1; }
      }
    }
    c.dataset.points = String(drawn);
    const m = { l: 52, r: 10, t: this.opts.title ? 20 : 8, b: 30 };
    g.fillStyle = '#222';
    if (this.opts.title) g.fillText(this.opts.title, m.l, 13);
    if (!drawn) {
      g.fillStyle = '#666';
      g.fillText('no finite points to draw', w / 2 - 55, h / 2);
      this.frame = null;
      return;
    }
    if (x0 === x1) { x0 -= 0.5; x1 += 0.5; }
    if (y0 === y1) { y0 -= 0.5; y1 += 0.5; }
    const pad = (y1 - y0) * 0.05;
    y0 -= pad; y1 += pad;
    const pw = w - m.l - m.r;
    const ph = h - m.t - m.b;
    const X = (v) => m.l + ((v - x0) / (x1 - x0)) * pw;
    const Y = (v) => m.t + (1 - (v - y0) / (y1 - y0)) * ph;
    this.frame = { invX: (p) => x0 + ((p - m.l) / pw) * (x1 - x0), domain: [x0, x1] };
    // Axes and grid.
    g.strokeStyle = '#e3e3e3';
    g.fillStyle = '#444';
    g.lineWidth = 1;
    const xt = this.opts.logX ? logTicks(x0, x1) : linearTicks(x0, x1, Math.max(2, Math.floor(pw / 90)));
    const yt = this.opts.logY ? logTicks(y0, y1) : linearTicks(y0, y1, Math.max(2, Math.floor(ph / 40)));
    for (const t of xt) {
      const x = X(t);
      g.beginPath(); g.moveTo(x, m.t); g.lineTo(x, m.t + ph); g.stroke();
      const label = tickLabel(this.opts.logX ? 10 ** t : t);
      g.fillText(label, x - g.measureText(label).width / 2, h - m.b + 14);
    }
    for (const t of yt) {
      const y = Y(t);
      g.beginPath(); g.moveTo(m.l, y); g.lineTo(m.l + pw, y); g.stroke();
      const label = tickLabel(this.opts.logY ? 10 ** t : t);
      g.fillText(label, m.l - 6 - g.measureText(label).width, y + 4);
    }
    if (this.opts.xLabel) g.fillText(this.opts.xLabel, m.l + pw - g.measureText(this.opts.xLabel).width, h - 3);
    g.strokeStyle = '#999';
    g.strokeRect(m.l, m.t, pw, ph);
    // Series, clipped to the plot; a non-finite point breaks the line.
    g.save();
    g.beginPath(); g.rect(m.l, m.t, pw, ph); g.clip();
    series.forEach((s, i) => {
      g.strokeStyle = s.color;
      g.fillStyle = s.color;
      g.lineWidth = 1.6;
      g.setLineDash(series.length > 1 ? DASHES[i % DASHES.length] : []);
      g.beginPath();
      let open = false;
      for (const p of s.points) {
        if (!ok(p)) { open = false; continue; }
        const [x, y] = [X(p[0]), Y(p[1])];
        if (open) g.lineTo(x, y); else g.moveTo(x, y);
        open = true;
      }
      g.stroke();
      g.setLineDash([]);
      // A lone point draws no line: mark it.
      if (this.opts.markers || s.points.filter(ok).length === 1) {
        for (const p of s.points) if (ok(p)) { g.beginPath(); g.arc(X(p[0]), Y(p[1]), 3, 0, 7); g.fill(); }
      }
    });
    g.restore();
    if (this.drag) {
      g.fillStyle = 'rgba(31,111,180,0.15)';
      const [a, b] = [this.drag.from[0], this.drag.to[0]];
      g.fillRect(Math.min(a, b), m.t, Math.abs(b - a), ph);
    } else if (this.hover && this.hover[0] >= m.l && this.hover[0] <= m.l + pw) {
      this.drawHover(g, series, X, Y, m, pw);
    }
  }

  /** A vertical rule at the cursor and, per series, its nearest point's value. */
  drawHover(g, series, X, Y, m, pw) {
    const hx = this.hover[0];
    g.strokeStyle = '#888';
    g.beginPath(); g.moveTo(hx, m.t); g.lineTo(hx, this.opts.height - m.b); g.stroke();
    const lines = [];
    for (const s of series) {
      let best = null;
      for (const p of s.points) if (Number.isFinite(p[1]) && (!best || Math.abs(X(p[0]) - hx) < Math.abs(X(best[0]) - hx))) best = p;
      if (!best) continue;
      g.fillStyle = s.color;
      g.beginPath(); g.arc(X(best[0]), Y(best[1]), 3.5, 0, 7); g.fill();
      lines.push([s.color, `${s.label}: ${tickLabel(best[3])} at ${tickLabel(best[2])}`]);
    }
    const bw = Math.max(...lines.map(([, t]) => g.measureText(t).width), 0) + 12;
    const bx = hx + bw + 12 > m.l + pw ? hx - bw - 8 : hx + 8;
    g.fillStyle = 'rgba(255,255,255,0.92)';
    g.fillRect(bx, m.t + 4, bw, lines.length * 14 + 6);
    lines.forEach(([c, t], i) => { g.fillStyle = c; g.fillText(t, bx + 6, m.t + 16 + i * 14); });
  }
}

/** A chart with its canvas in a figure: the caption names it, the canvas is labelled for screen readers. */
export function chartFigure(title, opts = {}) {
  const canvas = document.createElement('canvas');
  canvas.setAttribute('role', 'img');
  canvas.setAttribute('aria-label', `${title} chart; drag, or + and − and arrow keys, to zoom and pan; double-click or Escape resets`);
  const fig = document.createElement('figure');
  fig.className = 'chart';
  const cap = document.createElement('figcaption');
  cap.textContent = title;
  fig.append(cap, canvas);
  return { fig, chart: new LineChart(canvas, opts) };
}

/** A legend of the series' colours, as a list. */
export function legend(series) {
  const ul = document.createElement('ul');
  ul.className = 'legend';
  series.forEach((s, i) => {
    const li = document.createElement('li');
    const sw = document.createElement('span');
    sw.className = 'swatch';
    sw.style.background = s.color || color(i);
    li.append(sw, s.label);
    const dash = dashName(i, series.length);
    if (dash) li.append(` (${dash})`);
    ul.append(li);
  });
  return ul;
}

/**
 * The controls every page with curves shares: log x, log y, smoothing, reset zoom. `onChange`
 * gets the new options; `onReset` resets the charts' zoom.
 */
export function chartControls(options, onChange, onReset) {
  const state = { ...options };
  const wrap = document.createElement('div');
  wrap.className = 'controls';
  const box = (id, label, key) => {
    const l = document.createElement('label');
    const i = document.createElement('input');
    i.type = 'checkbox';
    i.id = id;
    i.checked = options[key];
    i.addEventListener('change', () => { state[key] = i.checked; onChange({ ...state }); });
    l.append(i, ` ${label}`);
    return l;
  };
  const sl = document.createElement('label');
  const range = document.createElement('input');
  range.type = 'range';
  range.id = 'smoothing';
  range.min = '0';
  range.max = '0.99';
  range.step = '0.01';
  range.value = String(options.smoothing);
  const out = document.createElement('output');
  out.htmlFor = 'smoothing';
  out.textContent = range.value;
  range.addEventListener('input', () => {
    out.textContent = range.value;
    state.smoothing = Number(range.value);
    onChange({ ...state });
  });
  sl.append('Smoothing ', range, ' ', out);
  const reset = document.createElement('button');
  reset.type = 'button';
  reset.textContent = 'Reset zoom';
  reset.addEventListener('click', onReset);
  wrap.append(box('log-x', 'log x', 'logX'), box('log-y', 'log y', 'logY'), sl, reset);
  return wrap;
}
