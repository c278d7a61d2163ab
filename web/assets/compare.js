// The compare view: the chosen trials' curves of one metric overlaid, their summaries, and the
// differences between their configurations. Trials come from the address (?trials=ID,ID,...),
// which the experiment page's "Compare selected" link fills.

import { api, curve, el, fmt, fmtParam, live, notice, pageData, showError } from './common.js';
import { chartControls, chartFigure, color, dashName } from './chart.js';

const data = pageData();
const expId = Number(data.experiment);
const root = document.getElementById('compare');
let ids = (new URLSearchParams(location.search).get('trials') || '').split(',').map(Number).filter((n) => Number.isInteger(n) && n > 0);
ids = [...new Set(ids)];
let trials = []; // [{trial, summaries}]
let metric = new URLSearchParams(location.search).get('metric') || data.objective;
let options = { logX: false, logY: false, smoothing: 0 };
let chart = null;

/** A configuration as dotted paths to leaf values. */
function flatten(obj, prefix = '', out = {}) {
  for (const [k, v] of Object.entries(obj || {})) {
    const path = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === 'object' && !Array.isArray(v)) flatten(v, path, out);
    else out[path] = JSON.stringify(v);
  }
  return out;
}

function setAddress() {
  const q = new URLSearchParams({ trials: ids.join(',') });
  if (metric !== data.objective) q.set('metric', metric);
  history.replaceState(null, '', `?${q.toString().replace(/%2C/g, ',')}`);
}

let loadSeq = 0;
/** Reads the trials in `ids`; the newest call wins (an older answer may hold a removed trial). */
async function load() {
  const seq = ++loadSeq;
  const want = [...ids];
  const loaded = await Promise.all(want.map(async (id) => {
    const [trial, summaries] = await Promise.all([api(`/api/v1/trials/${id}`), api(`/api/v1/trials/${id}/summaries`)]);
    if (trial.experiment_id !== expId) throw new Error(`trial ${id} belongs to experiment ${trial.experiment_id}, not this one`);
    return { trial, summaries };
  }));
  if (seq !== loadSeq) return false;
  trials = loaded.sort((a, b) => a.trial.index - b.trial.index);
  return true;
}

let drawSeq = 0;
/** Draws `metric` of `trials` into the chart on screen; an answer for an older choice is dropped. */
async function drawChart() {
  const seq = ++drawSeq;
  const [target, shownTrials, name] = [chart, trials, metric];
  const curves = await Promise.all(shownTrials.map((t) => curve(t.trial.id, name)));
  if (seq !== drawSeq) return;
  target.setSeries(shownTrials.map((t, i) => ({ label: `#${t.trial.index}`, color: color(i), points: curves[i] })));
  root.dataset.ready = 'true';
}

/** Draws the view; `focus` (a selector) gets the focus back in the new one. */
function render(focus) {
  if (trials.length < 2) {
    root.replaceChildren(el('p', { class: 'empty' }, 'Pick two or more trials to compare: tick them in the ',
      el('a', { href: `/experiments/${expId}` }, 'experiment’s trials table'), ' and press “Compare selected”.'));
    root.dataset.ready = 'true';
    return;
  }
  const names = [...new Set(trials.flatMap((t) => Object.keys(t.summaries)))].sort();
  if (!names.includes(metric)) metric = names.includes(data.objective) ? data.objective : names[0];
  const select = el('select', { id: 'compare-metric', onchange: () => { metric = select.value; setAddress(); render('#compare-metric'); } },
    names.map((n) => el('option', { value: n, selected: n === metric }, n)));
  const f = chartFigure(`${metric} by step`, { ...options, xLabel: 'step', height: 320 });
  chart = f.chart;
  const controls = el('div', { class: 'controls' }, el('label', {}, 'Metric ', select),
    chartControls(options, (o) => { options = o; chart.set(o); }, () => chart.resetZoom()));
  const key = el('ul', { class: 'legend' }, trials.map((t, i) => el('li', {},
    el('span', { class: 'swatch', style: `background:${color(i)}` }),
    el('a', { href: `/trials/${t.trial.id}` }, `trial #${t.trial.index}`),
    dashName(i, trials.length) ? ` (${dashName(i, trials.length)})` : '',
    el('button', { type: 'button', class: 'link', 'aria-label': `Remove trial ${t.trial.index} from the comparison`,
      onclick: () => {
        ids = ids.filter((x) => x !== t.trial.id);
        trials = trials.filter((x) => x !== t);
        setAddress();
        // The focus goes to the next trial's remove button (or the metric menu).
        render(`#compare .legend li:nth-child(${Math.min(i + 1, trials.length)}) button`);
      } }, '×'))));
  const summary = el('table', { class: 'grid', id: 'compare-summary' },
    el('caption', {}, `${metric}: per trial`),
    el('thead', {}, el('tr', {}, ['trial', 'state', 'last', 'min', 'max', 'last step'].map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, trials.map((t) => {
      const s = t.summaries[metric] || {};
      return el('tr', {}, el('td', {}, `#${t.trial.index}`), el('td', {}, t.trial.phase), el('td', { class: 'num' }, fmt(s.last)),
        el('td', { class: 'num' }, fmt(s.min)), el('td', { class: 'num' }, fmt(s.max)), el('td', { class: 'num' }, s.last_step ?? '—'));
    })));
  root.replaceChildren(controls, f.fig, key, el('div', { class: 'two' }, summary, diffTable()));
  if (focus) (root.querySelector(focus) || select).focus();
  drawChart().catch(notice);
}

/** The configuration paths whose values differ between the trials (all of them on request). */
function diffTable() {
  const flat = trials.map((t) => flatten(t.trial.config));
  const paths = [...new Set(flat.flatMap(Object.keys))].sort();
  const differs = (p) => new Set(flat.map((f) => f[p])).size > 1;
  const showAll = el('input', { type: 'checkbox', id: 'diff-all' });
  const body = el('tbody');
  const fill = () => body.replaceChildren(...paths.filter((p) => showAll.checked || differs(p)).map((p) =>
    el('tr', { class: differs(p) ? 'diff' : undefined }, el('th', { scope: 'row' }, p),
      flat.map((f) => el('td', {}, f[p] === undefined ? '—' : fmtParam(JSON.parse(f[p])))))));
  showAll.addEventListener('change', fill);
  fill();
  return el('div', {}, el('label', {}, showAll, ' show identical settings too'),
    el('table', { class: 'grid', id: 'param-diff' },
      el('caption', {}, 'Configuration differences (highlighted: values that differ)'),
      el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'setting'), trials.map((t) => el('th', { scope: 'col' }, `#${t.trial.index}`)))),
      body));
}

load().then(() => render()).catch((err) => showError(root, err));
live(`/api/v1/experiments/${expId}/events`, (events) => {
  const mine = events.filter((e) => e.kind === 'lagged' || ids.includes(e.trial_id));
  if (!mine.length || !chart) return;
  // New points only redraw the curves; a phase change also refreshes the tables.
  if (mine.every((e) => e.kind === 'metrics')) drawChart().catch(notice);
  else load().then((fresh) => fresh && render()).catch(notice);
});
