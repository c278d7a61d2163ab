// The stability panel (docs/workloads/stability.md): LR against final loss and max attention
// logit per configuration, and each configuration's LR sensitivity.

import { el, fmt } from '../common.js';
import { chartFigure, legend, color } from '../chart.js';

/** LR against final loss per configuration (Wortsman et al. Fig. 1), with each one's LR sensitivity. */
export function render(target, analysis) {
  const configs = analysis.lrSensitivity.filter((c) => c.curve.length >= 2);
  if (!configs.length) {
    target.replaceChildren(el('p', { class: 'empty' },
      'No LR sweep to plot yet: the panel needs finished trials at two or more learning rates (training.lr) of one configuration.'));
    return;
  }
  const series = configs.map((c, i) => ({ label: c.config, color: color(i), points: c.curve.map((p) => [p.lr, p.loss]) }));
  const loss = chartFigure('Final loss (min(ℓ, ℓ₀), mean over seeds) against learning rate', { logX: true, markers: true, xLabel: 'learning rate', height: 260 });
  const logits = configs.some((c) => c.curve.some((p) => p.max_attn_logit != null))
    ? chartFigure('Max attention logit against learning rate', { logX: true, logY: true, markers: true, xLabel: 'learning rate', height: 260 })
    : null;
  const table = el('table', { class: 'grid', id: 'lrs-table' },
    el('caption', {}, 'LR sensitivity E_η[min(ℓ(η), ℓ₀) − min ℓ] per configuration (lower: less sensitive)'),
    el('thead', {}, el('tr', {}, ['configuration', 'LR sensitivity', '± seeds', 'best LR', 'best loss', 'largest stable LR']
      .map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, configs.map((c, i) => el('tr', {},
      el('td', {}, el('span', { class: 'swatch', style: `background:${color(i)}` }), ' ', c.config),
      el('td', { class: 'num' }, fmt(c.lr_sensitivity)),
      el('td', { class: 'num' }, c.lrs_spread == null ? '—' : fmt(c.lrs_spread)),
      el('td', { class: 'num' }, fmt(c.best_lr)),
      el('td', { class: 'num' }, fmt(c.best_loss)),
      el('td', { class: 'num' }, c.largest_stable_lr == null ? 'none' : fmt(c.largest_stable_lr))))));
  target.replaceChildren(el('div', { class: 'charts' }, loss.fig, logits?.fig), legend(series), table);
  loss.chart.setSeries(series);
  logits?.chart.setSeries(configs.map((c, i) => ({ label: c.config, color: color(i),
    points: c.curve.filter((p) => p.max_attn_logit != null).map((p) => [p.lr, p.max_attn_logit]) })));
}
