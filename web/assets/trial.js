// The trial page: one chart per metric (log axes, smoothing, drag-to-zoom), the parameters, the
// state history, the stored artifacts (download links) and the configuration; redrawn live while
// the trial runs.

import { api, curve, el, fmtParam, live, notice, pageData, phaseBadge } from './common.js';
import { chartControls, chartFigure } from './chart.js';

const data = pageData();
const trialId = Number(data.trial);
const charts = new Map(); // metric name -> LineChart
const drawn = new Map(); // metric name -> the newest request for it (an older answer is dropped)
const curves = document.getElementById('curves');
let options = { logX: false, logY: false, smoothing: 0 };

/** Objective first, then the rest by name. */
function ordered(names) {
  return [...names].sort((a, b) => (b === data.objective) - (a === data.objective) || a.localeCompare(b));
}

async function drawMetric(name) {
  let chart = charts.get(name);
  if (!chart) {
    const f = chartFigure(name === data.objective ? `${name} (objective)` : name, { ...options, xLabel: 'step' });
    f.fig.dataset.metric = name;
    curves.append(f.fig);
    chart = f.chart;
    charts.set(name, chart);
  }
  const seq = (drawn.get(name) || 0) + 1;
  drawn.set(name, seq);
  const points = await curve(trialId, name);
  if (drawn.get(name) !== seq) return;
  chart.setSeries([{ label: name, points }]);
}

async function drawCurves(names) {
  const summaries = await api(`/api/v1/trials/${trialId}/summaries`);
  const all = ordered(Object.keys(summaries));
  if (!all.length) {
    curves.replaceChildren(el('p', { class: 'empty' }, 'No metrics reported yet.'));
    curves.dataset.ready = 'true';
    return;
  }
  curves.querySelector('p.empty')?.remove();
  await Promise.all((names || all).filter((n) => all.includes(n)).map(drawMetric));
  for (const n of all) {
    // Keep the charts in order whatever order their data arrived in.
    const fig = curves.querySelector(`figure[data-metric="${CSS.escape(n)}"]`);
    if (fig) curves.append(fig);
  }
  applyFilter();
  curves.dataset.ready = 'true';
}

async function drawFacts() {
  const [t, hist] = await Promise.all([api(`/api/v1/trials/${trialId}`), api(`/api/v1/trials/${trialId}/history`)]);
  document.getElementById('trial-meta').replaceChildren(phaseBadge(t.phase),
    ` · attempts ${t.attempts}`, t.started_at ? ` · started ${t.started_at}` : '',
    t.finished_at ? ` · finished ${t.finished_at}` : '', t.message ? ` · ${t.message}` : '');
  const params = Object.entries(t.params);
  document.getElementById('params').replaceChildren(params.length
    ? el('table', { class: 'grid kv' }, el('tbody', {}, params.map(([k, v]) =>
      el('tr', {}, el('th', { scope: 'row' }, k), el('td', {}, fmtParam(v))))))
    : el('p', { class: 'muted' }, 'This trial sweeps no parameters.'));
  const pv = t.provenance;
  document.getElementById('provenance').replaceChildren(pv
    ? el('table', { class: 'grid kv', id: 'provenance-table' }, el('tbody', {}, [
      ['worker', pv.worker_version], ['libtorch', pv.libtorch_version], ['device', pv.device],
      ['configuration SHA-256', pv.config_sha256], ['data SHA-256', pv.data_sha256],
      ['started from (SHA-256)', pv.init_from_sha256 || 'its own initialisation'],
    ].map(([k, v]) => el('tr', {}, el('th', { scope: 'row' }, k), el('td', {}, v.length === 64 ? el('code', {}, v) : v)))))
    : el('p', { class: 'muted' }, 'Not reported: its worker records it when an attempt starts.'));
  document.getElementById('history').replaceChildren(el('table', { class: 'grid', id: 'history-table' },
    el('thead', {}, el('tr', {}, ['state', 'attempts', 'at', 'message'].map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, hist.map((h) => el('tr', {}, el('td', {}, phaseBadge(h.phase)), el('td', { class: 'num' }, h.attempts),
      el('td', { class: 'muted' }, h.at), el('td', {}, h.message || ''))))));
  const logs = await api(`/api/v1/trials/${trialId}/logs`);
  document.getElementById('logs').replaceChildren(logs.length
    ? el('ul', { class: 'logs' }, logs.map((f) => el('li', {},
      el('a', { href: f.url }, `attempt ${f.attempt}`), ` (${(f.bytes / 1024).toFixed(1)} KiB)`)))
    : el('p', { class: 'muted' }, 'No log files here: ', el('code', {}, 'orrery run'),
      ' writes one per attempt under its work folder (this server links them when started with ',
      el('code', {}, 'orrery serve --workdir'), '); on a cluster: ',
      el('code', {}, `kubectl logs -l orrery.dev/trial=${data.name}-${t.index}`), '.'));
  const stored = await api(`/api/v1/trials/${trialId}/artifacts`);
  document.getElementById('artifacts').replaceChildren(stored.length
    ? el('table', { class: 'grid', id: 'artifacts-table' },
      el('thead', {}, el('tr', {}, ['artifact', 'bytes', 'step', 'SHA-256', 'stored'].map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, stored.map((a) => el('tr', {},
        el('td', {}, el('a', { href: `/api/v1/trials/${trialId}/artifacts/${encodeURIComponent(a.name)}`, download: a.name }, a.name)),
        el('td', { class: 'num' }, a.size.toLocaleString('en')),
        el('td', { class: 'num' }, a.step ?? ''),
        el('td', {}, el('code', { title: a.sha256 }, a.sha256.slice(0, 12))),
        el('td', { class: 'muted' }, a.created)))))
    : el('p', { class: 'muted' }, 'No stored artifacts: a worker uploads its checkpoints every ',
      el('code', {}, 'training.checkpoint_every'), ' steps and its final weights (', el('code', {}, 'model'), ') at the end.'));
  document.getElementById('config').replaceChildren(el('details', {}, el('summary', {}, 'Resolved configuration (JSON)'),
    el('pre', {}, JSON.stringify(t.config, null, 2))));
}

function redrawAll() { for (const c of charts.values()) c.set(options); }

// A trial logs dozens of metrics: a filter narrows the charts to the names that match.
const filter = el('input', { type: 'search', id: 'metric-filter', placeholder: 'e.g. loss', 'aria-label': 'Show metrics whose name contains' });
function applyFilter() {
  const want = filter.value.trim().toLowerCase();
  for (const fig of curves.querySelectorAll('figure[data-metric]')) fig.hidden = !fig.dataset.metric.toLowerCase().includes(want);
}
filter.addEventListener('input', applyFilter);
document.getElementById('chart-controls').append(el('label', {}, 'Metrics ', filter),
  chartControls(options, (o) => { options = o; redrawAll(); }, () => { for (const c of charts.values()) c.resetZoom(); }));

// Errors go to the notice above the page; what is drawn stays drawn.
drawCurves().catch(notice);
drawFacts().catch(notice).finally(() => { document.getElementById('main').dataset.factsReady = 'true'; });

live(`/api/v1/experiments/${data.experiment}/events`, (events) => {
  const mine = events.filter((e) => e.kind === 'lagged' || e.trial_id === trialId);
  if (!mine.length) return;
  const grew = new Set(mine.flatMap((e) => e.names || []));
  const everything = mine.some((e) => e.kind !== 'metrics');
  drawCurves(everything ? undefined : [...grew]).catch(notice);
  if (everything) drawFacts().catch(notice);
});
