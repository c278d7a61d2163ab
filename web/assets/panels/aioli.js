// The aioli panel (docs/workloads/aioli.md): average test perplexity over groups per
// configuration (the method, and anything else swept), mean ± std over seeds, and the difference
// from stratified sampling — the paper's headline comparison; and, when the experiment has enough
// static trials, the mixing law fitted on them (per group c, b, the row of A and R²; its optimum).

import { el, fmt } from '../common.js';

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
