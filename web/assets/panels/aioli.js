// The aioli panel (docs/workloads/aioli.md): average test perplexity over groups per
// configuration (the method, and anything else swept), mean ± std over seeds, and the difference
// from stratified sampling — the paper's headline comparison; when the experiment has enough
// static trials, the mixing law fitted on them (per group c, b, the row of A and R²; its optimum);
// each learned mixture over steps (aioli; doremi's proxy), and the interaction matrices Aioli
// estimated, as heat maps.

import { el, fmt } from '../common.js';
import { chartFigure, legend, color } from '../chart.js';

/** One row per configuration, best first (the analysis sorts them). */
export function render(target, analysis) {
  const rows = analysis.methods;
  if (!rows.length) {
    target.replaceChildren(el('p', { class: 'empty' },
      'No result to compare yet: the panel needs finished trials that reported test/avg_ppl.'));
    return;
  }
  const delta = (r) => (r.deltaVsStratified == null
    ? '—'
    : `${r.deltaVsStratified >= 0 ? '+' : ''}${fmt(r.deltaVsStratified)} (${r.deltaPctVsStratified >= 0 ? '+' : ''}${r.deltaPctVsStratified.toFixed(2)} %)`);
  const table = el('table', { class: 'grid', id: 'methods-table' },
    el('caption', {}, 'Average test perplexity over groups, mean over seeds (lower is better)'),
    el('thead', {}, el('tr', {}, ['configuration', 'avg test ppl', '± std', 'seeds', 'Δ vs stratified']
      .map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, rows.map((r) => el('tr', {},
      el('td', {}, r.config),
      el('td', { class: 'num' }, fmt(r.avgTestPpl)),
      el('td', { class: 'num' }, r.std == null ? 'one seed' : fmt(r.std)),
      el('td', { class: 'num' }, String(r.seeds)),
      el('td', { class: 'num' }, delta(r))))));
  target.replaceChildren(table);
  if (analysis.mixingLaw) target.append(lawTable(analysis.mixingLaw));
  const traces = analysis.mixtureOverSteps || [];
  const matrices = analysis.interactions || [];
  mixtureCharts(target, traces.slice(0, MAX_DRAWN));
  const maps = matrices.slice(0, 2 * MAX_DRAWN).map(heatMap);
  if (maps.length) target.append(el('div', { class: 'heatmaps' }, maps));
  if (traces.length > MAX_DRAWN || matrices.length > 2 * MAX_DRAWN) {
    target.append(el('p', { class: 'empty' },
      `Drawn: the mixtures and matrices of the first ${MAX_DRAWN} configurations (of ${traces.length}); `
      + 'the rest are in the analysis (GET /api/v1/experiments/{id}/analysis).'));
  }
}

/** Configurations whose learned mixture (and matrices) the panel draws, at most. */
const MAX_DRAWN = 12;

/** One chart per configuration that learned its mixture: a group's weight against the step. */
function mixtureCharts(target, traces) {
  if (!traces.length) return;
  const groups = [...new Set(traces.flatMap((t) => t.points.flatMap((p) => Object.keys(p.p))))].sort();
  const figures = traces.map((t) => {
    const source = t.source.replace(/\/$/, '');
    const f = chartFigure(`Mixture over steps: ${t.config} (${source}, mean over ${t.seeds} seed${t.seeds === 1 ? '' : 's'})`,
      { xLabel: 'step', markers: true, height: 220 });
    f.fig.classList.add('mixture-chart');
    // A trial's mix/p is logged when it changes and held in between: drawn as steps. DoReMi's
    // proxy weights move every step and are logged every log_every steps: drawn as lines.
    const held = t.source === 'mix/p/';
    return { f, series: groups.map((g, i) => ({ label: g, color: color(i),
      points: stairs(t.points.filter((p) => p.p[g] != null).map((p) => [p.step, p.p[g]]), held) })) };
  });
  target.append(el('div', { class: 'charts' }, figures.map(({ f }) => f.fig)),
    legend(groups.map((g, i) => ({ label: g, color: color(i) }))));
  for (const { f, series } of figures) f.chart.setSeries(series);
}

/** `points` as a staircase when `held` (each value holds until the next point's step). */
function stairs(points, held) {
  if (!held) return points;
  return points.flatMap((p, i) => (i ? [[p[0], points[i - 1][1]], p] : [p]));
}

/**
 * An interaction matrix as a heat map: a table whose cells carry their value and a tint, blue for
 * positive and red for negative, its strength the value over the matrix's largest magnitude.
 */
function heatMap(m, i) {
  const cells = m.groups.flatMap((r) => m.groups.map((c) => m.mean[r][c]));
  const scale = Math.max(...cells.map(Math.abs)) || 1;
  const tint = (v) => {
    const a = (0.5 * Math.abs(v) / scale).toFixed(3);
    return v >= 0 ? `background: rgba(31, 111, 180, ${a})` : `background: rgba(198, 40, 40, ${a})`;
  };
  const what = m.metric === 'mix/A_raw'
    ? 'raw estimate Â (drop of the row group\'s validation loss per segment on the column group)'
    : 'A used by the update (de-mixed, normalised)';
  return el('table', { class: 'grid heatmap', id: `interaction-${i}`, dataset: { metric: m.metric } },
    el('caption', {}, `${m.config}: ${m.metric}, the ${what}; mean over ${m.rounds} rounds, `
      + `${m.diagonalPositive} with every diagonal entry > 0 (blue: positive, red: negative)`),
    el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'row \\ column'),
      m.groups.map((c) => el('th', { scope: 'col' }, c)))),
    el('tbody', {}, m.groups.map((r) => el('tr', {},
      el('th', { scope: 'row' }, r),
      m.groups.map((c) => el('td', { class: 'num', style: tint(m.mean[r][c]) }, fmt(m.mean[r][c])))))));
}

/** The fitted law L_i(p) = c_i + b_i·exp(−Σ_j A_ij p_j), one row per group. */
function lawTable(law) {
  const cols = law.groups.map((g) => g.group);
  const optimum = cols.map((g) => `${g} ${law.optimum[g].toFixed(3)}`).join(', ');
  return el('table', { class: 'grid', id: 'mixing-law-table' },
    el('caption', {},
      `Mixing law L_i(p) = c_i + b_i·exp(−Σ_j A_ij p_j) on ${law.points} static trials `
      + `(column ${law.pinnedColumn} pinned to 0); optimum ${optimum}, `
      + `predicted avg test ppl ${fmt(law.predictedAvgTestPpl)}`),
    el('thead', {}, el('tr', {}, ['group', 'c', 'b', ...cols.map((c) => `A[·,${c}]`), 'R²']
      .map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, law.groups.map((g) => el('tr', {},
      el('td', {}, g.group),
      el('td', { class: 'num' }, fmt(g.c)),
      el('td', { class: 'num' }, fmt(g.b)),
      ...cols.map((c) => el('td', { class: 'num' }, fmt(g.a[c]))),
      el('td', { class: 'num' }, g.r2.toFixed(3))))));
}
