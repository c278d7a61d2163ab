// The experiment page: the trials table (server-side sort, filter and pagination through the
// leaderboard API, whose query the page's own address mirrors), a column chooser, trial
// selection for the compare view, the workload panel, and live updates.
//
// Two ways to redraw: a change of view (sort, filter, page, columns) redraws the whole table;
// a live update replaces only the rows and the pager's text, so a filter being typed, an open
// menu or the focused control survive it.

import { api, el, fmt, fmtParam, live, notice, pageData, phaseBadge } from './common.js';
import { hasPanel, renderPanel } from './panels.js';

const data = pageData();
const expId = Number(data.experiment);
const PHASES = ['Pending', 'Running', 'Succeeded', 'Failed', 'Diverged', 'EarlyStopped', 'Cancelled'];
const PAGE_SIZES = [25, 50, 100, 250];
const DECIMAL = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;
const root = document.getElementById('trials');
const status = document.getElementById('table-status');

// The view, in the leaderboard API's terms; the address bar keeps it (shareable, survives reload).
let view = readView();
let lastGood = structuredClone(view);
let board = JSON.parse(document.getElementById('initial-board').textContent);
const paramNames = new Set();
const metricNames = new Set();
const selected = new Set(JSON.parse(sessionStorage.getItem(`orrery.selected.${expId}`) || '[]'));
let hidden = loadHidden(); // null: the default columns (see columns())
let shown = []; // the columns of the table on screen
let renderedView = ''; // the view those columns and headers were drawn for
let pendingFocus; // where a user's change of view wants the focus once it is drawn
let requestSeq = 0;

function readView() {
  const q = new URLSearchParams(location.search);
  const v = { sort: q.get('sort') || 'objective', order: q.get('order') || '', phase: q.get('phase') || '',
    limit: Number(q.get('limit')) || 50, offset: Number(q.get('offset')) || 0, params: {}, ranges: {} };
  for (const [k, val] of q) {
    if (k.startsWith('param.')) v.params[k.slice(6)] = val;
    const bound = k.match(/^(min|max)\.(.+)$/);
    if (bound) (v.ranges[bound[2]] ||= {})[bound[1]] = val;
  }
  return v;
}

function viewQuery() {
  const q = new URLSearchParams();
  if (view.sort !== 'objective') q.set('sort', view.sort);
  if (view.order) q.set('order', view.order);
  if (view.phase) q.set('phase', view.phase);
  for (const [k, v] of Object.entries(view.params)) if (v !== '') q.set(`param.${k}`, v);
  for (const [k, b] of Object.entries(view.ranges)) {
    for (const side of ['min', 'max']) if (b[side] !== undefined && b[side] !== '') q.set(`${side}.${k}`, b[side]);
  }
  if (view.limit !== 50) q.set('limit', view.limit);
  if (view.offset) q.set('offset', view.offset);
  return q;
}

/**
 * Re-reads the page of the table the view names (the newest request wins). `live`: only the rows
 * change; otherwise the table is redrawn and `keepFocus` (a selector) gets the focus back. A view
 * the server refuses is undone and said so above the table.
 */
async function reload({ keepFocus, live: isLive } = {}) {
  const q = viewQuery();
  const seq = ++requestSeq;
  if (!isLive) pendingFocus = keepFocus;
  const apiQuery = new URLSearchParams(q);
  apiQuery.set('limit', view.limit);
  root.setAttribute('aria-busy', 'true');
  try {
    const b = await api(`/api/v1/experiments/${expId}/leaderboard?${apiQuery}`);
    if (seq !== requestSeq) return;
    if (b.total > 0 && view.offset >= b.total) {
      // Past the end (trials filtered away, or a hand-edited address): the last page instead.
      view.offset = Math.floor((b.total - 1) / view.limit) * view.limit;
      reload({ keepFocus });
      return;
    }
    board = b;
    lastGood = structuredClone(view);
    history.replaceState(null, '', q.toString() ? `?${q}` : location.pathname);
    notice(null);
    if (isLive) refreshRows(); else render(keepFocus);
  } catch (err) {
    if (seq !== requestSeq) return;
    if (!isLive) { view = structuredClone(lastGood); render(keepFocus); }
    notice(err);
  } finally {
    if (seq === requestSeq) root.removeAttribute('aria-busy');
  }
}

function loadHidden() {
  const saved = localStorage.getItem(`orrery.hidden.${expId}`);
  return saved ? new Set(JSON.parse(saved)) : null;
}

/** Every column the table can show: fixed ones, each swept parameter, each metric's last value. */
function columns() {
  for (const r of board.rows) {
    Object.keys(r.params).forEach((p) => paramNames.add(p));
    Object.keys(r.summaries).forEach((m) => metricNames.add(m));
  }
  const objective = data.objective;
  const cols = [
    { key: 'rank', label: 'rank', cls: 'num', cell: (r) => r.rank ?? '—' },
    { key: 'index', label: 'trial', sort: 'index', cls: 'num',
      cell: (r) => el('a', { href: `/trials/${r.trial_id}` }, `#${r.index}`) },
    { key: 'phase', label: 'state', cell: (r) => phaseBadge(r.phase) },
    ...[...paramNames].sort().map((p) => ({ key: `param:${p}`, label: p, sort: `param:${p}`, param: p,
      cls: 'param', cell: (r) => fmtParam(r.params[p]) })),
    { key: 'objective', label: `${objective} (objective)`, sort: 'objective', range: 'objective', cls: 'num objective',
      cell: (r) => fmt(r.objective) },
    ...[...metricNames].filter((m) => m !== objective).sort().map((m) => ({ key: `metric:${m}`,
      label: m, sort: `metric:${m}`, range: `metric:${m}`, cls: 'num', cell: (r) => fmt(r.summaries[m]?.last) })),
  ];
  // By default the first few other metrics are shown; the chooser reveals the rest.
  const defaultHidden = new Set(cols.filter((c) => c.key.startsWith('metric:')).slice(4).map((c) => c.key));
  return cols.map((c) => ({ ...c, hidden: (hidden || defaultHidden).has(c.key) }));
}

/** 'asc' or 'desc' when the table is sorted by this column. */
function sortState(col) {
  if (!col.sort || col.sort !== view.sort) return null;
  if (view.order) return view.order;
  return col.sort === 'objective' && data.goal === 'max' ? 'desc' : 'asc';
}

const words = (state) => (state === 'asc' ? 'ascending' : 'descending');

function header(col) {
  const state = sortState(col);
  const th = el('th', { scope: 'col', class: col.cls, 'aria-sort': state ? words(state) : undefined });
  if (!col.sort) { th.append(col.label); return th; }
  th.append(el('button', {
    type: 'button', class: 'sort', dataset: { sort: col.sort },
    'aria-label': `Sort by ${col.label}${state ? `, now ${words(state)}` : ''}`,
    onclick: () => {
      if (view.sort === col.sort) view.order = state === 'asc' ? 'desc' : 'asc';
      else { view.sort = col.sort; view.order = ''; }
      view.offset = 0;
      reload({ keepFocus: `button[data-sort="${CSS.escape(col.sort)}"]` });
    },
  }, col.label, state === 'asc' ? ' ▲' : state === 'desc' ? ' ▼' : ''));
  return th;
}

function filterCell(col) {
  const td = el('td', { class: col.cls });
  if (col.key === 'phase') {
    const sel = el('select', { 'aria-label': 'Filter by state', id: 'filter-phase', dataset: { filter: 'phase' },
      onchange: () => { view.phase = sel.value; view.offset = 0; reload({ keepFocus: '#filter-phase' }); } },
    el('option', { value: '' }, 'all'), PHASES.map((p) => el('option', { value: p, selected: view.phase === p }, p)));
    td.append(sel);
  } else if (col.param) {
    const key = `param:${col.param}`;
    const input = el('input', { type: 'search', value: view.params[col.param] || '', placeholder: '= value',
      'aria-label': `Filter ${col.param} (exact value, Enter to apply)`, size: 8, dataset: { filter: key } });
    input.addEventListener('change', () => {
      view.params[col.param] = input.value.trim();
      view.offset = 0;
      reload({ keepFocus: `[data-filter="${CSS.escape(key)}"]` });
    });
    td.append(input);
  } else if (col.range) {
    // Bounds on the last value, both inclusive; the server keeps finite values only.
    for (const side of ['min', 'max']) {
      const key = `${side}:${col.range}`;
      const input = el('input', { type: 'text', inputmode: 'decimal', class: 'bound', size: 5, dataset: { filter: key },
        value: view.ranges[col.range]?.[side] ?? '', placeholder: side === 'min' ? '≥ min' : '≤ max',
        'aria-label': `${col.label}: ${side === 'min' ? 'at least' : 'at most'} (Enter to apply)` });
      input.addEventListener('change', () => {
        const v = input.value.trim();
        if (v !== '' && !DECIMAL.test(v)) { input.setCustomValidity('Enter a decimal number, e.g. 2.5 or 1e-3'); input.reportValidity(); return; }
        input.setCustomValidity('');
        const b = (view.ranges[col.range] ||= {});
        if (v === '') delete b[side]; else b[side] = v;
        view.offset = 0;
        reload({ keepFocus: `[data-filter="${CSS.escape(key)}"]` });
      });
      td.append(input);
    }
  }
  return td;
}

function row(r) {
  const tr = el('tr', { class: r.rank === 1 ? 'best' : undefined, dataset: { trial: r.trial_id, index: r.index } });
  const box = el('input', { type: 'checkbox', 'aria-label': `Select trial ${r.index} to compare`, checked: selected.has(r.trial_id) });
  box.addEventListener('change', () => {
    if (box.checked) selected.add(r.trial_id); else selected.delete(r.trial_id);
    sessionStorage.setItem(`orrery.selected.${expId}`, JSON.stringify([...selected]));
    updateCompare();
  });
  tr.append(el('td', {}, box));
  for (const c of shown) {
    const td = el('td', { class: c.cls }, c.cell(r));
    if (c.key === 'rank' && r.rank === 1) td.append(el('span', { class: 'badge' }, 'best'));
    tr.append(td);
  }
  return tr;
}

function tbody() {
  return el('tbody', {}, board.rows.length ? board.rows.map(row)
    : el('tr', {}, el('td', { colspan: shown.length + 1, class: 'empty' }, 'No trials match this view.')));
}

function updateCompare() {
  const link = document.getElementById('compare-link');
  if (!link) return;
  const ids = [...selected];
  link.textContent = `Compare selected (${ids.length})`;
  // Fewer than two: not a link at all (aria-disabled alone would still follow on Enter).
  if (ids.length >= 2) link.href = `/experiments/${expId}/compare?trials=${ids.join(',')}`;
  else link.removeAttribute('href');
  link.setAttribute('aria-disabled', ids.length < 2 ? 'true' : 'false');
  link.classList.toggle('disabled', ids.length < 2);
}

function chooser(cols) {
  const details = el('details', { class: 'chooser' }, el('summary', {}, 'Columns'));
  const list = el('div', { class: 'chooser-list', role: 'group', 'aria-label': 'Columns to show' });
  for (const c of cols) {
    if (c.key === 'index') continue;
    const box = el('input', { type: 'checkbox', checked: !c.hidden, dataset: { col: c.key } });
    box.addEventListener('change', () => {
      hidden = new Set(cols.filter((x) => x.hidden).map((x) => x.key));
      if (box.checked) hidden.delete(c.key); else hidden.add(c.key);
      localStorage.setItem(`orrery.hidden.${expId}`, JSON.stringify([...hidden]));
      render(`input[data-col="${CSS.escape(c.key)}"]`);
    });
    list.append(el('label', {}, box, ' ', c.label));
  }
  details.append(list);
  return details;
}

function pageText() {
  const from = board.total ? view.offset + 1 : 0;
  const to = Math.min(view.offset + board.rows.length, board.total);
  return { from, to, text: `Trials ${from}–${to} of ${board.total.toLocaleString('en')}` };
}

function pager() {
  const { to, text } = pageText();
  const size = el('select', { id: 'page-size', 'aria-label': 'Rows per page',
    onchange: () => { view.limit = Number(size.value); view.offset = 0; reload({ keepFocus: '#page-size' }); } },
  [...new Set([...PAGE_SIZES, view.limit])].sort((a, b) => a - b)
    .map((n) => el('option', { value: n, selected: n === view.limit }, `${n} rows`)));
  const go = (offset, focus) => { view.offset = Math.max(0, offset); reload({ keepFocus: focus }); };
  return el('nav', { class: 'pager', 'aria-label': 'Pages of trials' },
    el('button', { type: 'button', id: 'page-prev', disabled: view.offset === 0, onclick: () => go(view.offset - view.limit, '#page-prev') }, '← Previous'),
    el('span', { id: 'page-info' }, text),
    el('button', { type: 'button', id: 'page-next', disabled: to >= board.total, onclick: () => go(view.offset + view.limit, '#page-next') }, 'Next →'),
    size);
}

/** One persistent live region says what the table shows, only when that changes. */
function announce() {
  const col = shown.find((c) => c.sort === view.sort) || { label: view.sort };
  const state = sortState(col) || view.order || 'asc';
  const text = `${pageText().text}, sorted by ${col.label} ${words(state)}`;
  if (status.textContent !== text) status.textContent = text;
}

function render(keepFocus = pendingFocus) {
  pendingFocus = undefined;
  renderedView = JSON.stringify(view);
  const cols = columns();
  shown = cols.filter((c) => !c.hidden);
  const filtered = Object.values(view.params).some((v) => v) || view.phase
    || Object.values(view.ranges).some((b) => Object.keys(b).length);
  const controls = el('div', { class: 'controls' }, chooser(cols), el('a', { class: 'button', id: 'compare-link' }),
    filtered ? el('button', { type: 'button', id: 'clear-filters', onclick: () => {
      view.params = {}; view.ranges = {}; view.phase = ''; view.offset = 0;
      reload({ keepFocus: '#filter-phase' });
    } }, 'Clear filters') : null);
  const table = el('table', { class: 'grid trials-table', id: 'trials-table' },
    el('caption', { class: 'sr-only' }, 'Trials; column headers sort, the second header row filters'),
    el('thead', {},
      el('tr', {}, el('th', { scope: 'col' }, el('span', { class: 'sr-only' }, 'select')), shown.map(header)),
      el('tr', { class: 'filters' }, el('td'), shown.map(filterCell))),
    tbody());
  const openChooser = root.querySelector('details.chooser')?.open;
  root.replaceChildren(controls, el('div', { class: 'scroll' }, table), pager());
  if (openChooser) root.querySelector('details.chooser').open = true;
  updateCompare();
  updateHeading();
  announce();
  if (keepFocus) root.querySelector(keepFocus)?.focus();
  if (!root.dataset.ready) performance.mark('orrery:table-ready'); // scripts/bench-web.sh reads it
  root.dataset.ready = 'true';
}

/** A live update: new rows and pager text in the table on screen; the focus stays where it was. */
function refreshRows() {
  const table = document.getElementById('trials-table');
  // A live answer that overtook a change of view carries the new view: draw it in full.
  if (!table || JSON.stringify(view) !== renderedView) { render(); return; }
  const active = document.activeElement;
  const focusedRow = table.tBodies[0]?.contains(active) ? active.closest('tr')?.dataset.trial : null;
  const focusedKind = active?.matches?.('a') ? 'a' : 'input';
  table.tBodies[0].replaceWith(tbody());
  const { to, text } = pageText();
  document.getElementById('page-info').textContent = text;
  document.getElementById('page-prev').disabled = view.offset === 0;
  document.getElementById('page-next').disabled = to >= board.total;
  if (focusedRow) table.querySelector(`tbody tr[data-trial="${focusedRow}"] ${focusedKind}`)?.focus();
  updateHeading();
  announce();
}

function updateHeading() {
  const e = board.experiment;
  const c = e.counts;
  const done = c.total - c.pending - c.running;
  const meta = document.getElementById('exp-meta');
  const badge = meta.querySelector('.phase');
  if (badge) { badge.textContent = e.phase; badge.className = `phase phase-${e.phase}`; }
  const extra = [c.running && `${c.running} running`, c.failed && `${c.failed} failed`, c.diverged && `${c.diverged} diverged`]
    .filter(Boolean).join(', ');
  meta.querySelector('.counts')?.replaceChildren(
    el('progress', { value: done, max: Math.max(1, c.total), 'aria-label': `${done} of ${c.total} trials done` }),
    ' ', el('span', { class: 'num' }, `${done}/${c.total}`), extra ? ` · ${extra}` : '');
}

function drawPanel() {
  const panel = document.getElementById('panel');
  // A workload without a panel module shows no panel at all.
  if (!hasPanel(data.workload)) {
    panel.closest('section').hidden = true;
    panel.dataset.ready = 'true';
    return;
  }
  renderPanel(panel, expId, data.workload)
    .catch((err) => { console.error(err); panel.replaceChildren(el('p', { class: 'error' }, String(err.message))); })
    .finally(() => { panel.dataset.ready = 'true'; });
}

render();
// The column chooser closes on Escape or a click elsewhere, like a menu.
document.addEventListener('keydown', (e) => {
  const open = root.querySelector('details.chooser[open]');
  if (e.key === 'Escape' && open) { open.open = false; open.querySelector('summary').focus(); }
});
document.addEventListener('click', (e) => {
  const open = root.querySelector('details.chooser[open]');
  if (open && !open.contains(e.target)) open.open = false;
});
drawPanel();
// A running experiment redraws its rows as trials report, and its panel when a trial finishes.
live(`/api/v1/experiments/${expId}/events`, (events) => {
  reload({ live: true });
  if (events.some((e) => e.kind === 'lagged' || e.kind === 'experiment' || (e.kind === 'trial' && e.phase !== 'Running'))) {
    drawPanel();
  }
});
