// Helpers shared by the pages: fetching the API, formatting numbers, building elements, and the
// live-update subscription.

/** GET a JSON document from the API; throws with the server's error message. */
export async function api(path) {
  const r = await fetch(path, { headers: { accept: 'application/json' } });
  if (!r.ok) {
    let msg = `${r.status} ${r.statusText}`;
    try { msg = (await r.json()).error || msg; } catch { /* not JSON */ }
    throw new Error(`${path}: ${msg}`);
  }
  return r.json();
}

/** Points drawn per curve: about a chart's width; the API keeps each bucket's min and max. */
const CURVE_POINTS = 1000;

/** One metric of one trial as `[step, value]` pairs, downsampled for drawing. */
export async function curve(trialId, name) {
  const points = await api(`/api/v1/trials/${trialId}/metrics?name=${encodeURIComponent(name)}&maxPoints=${CURVE_POINTS}`);
  return points.map((p) => [p.step, num(p.value)]);
}

/** The API writes NaN and ±inf as strings ("NaN", "Infinity"); everything else is a number or null. */
export const num = (v) => (typeof v === 'string' ? Number(v) : v);

/** A metric value for a table cell: 4 significant digits, exponent form when very large or small. */
export function fmt(v) {
  v = num(v);
  if (v === null || v === undefined) return '—';
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '∞' : '−∞';
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(3);
  return Number(v.toPrecision(4)).toString();
}

/** A swept parameter's value as text. */
export const fmtParam = (v) => (v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v));

/** `el('td', {class: 'num'}, 'text', child)`: attributes starting with `on` become listeners. */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

export const phaseBadge = (p) => el('span', { class: `phase phase-${p}` }, p);

/** Shows an error where the content would have been. */
export function showError(target, err) {
  target.replaceChildren(el('p', { class: 'error', role: 'alert' }, String(err.message || err)));
}

/** Says something went wrong at the top of the page, leaving the page as it is; `null` clears it. */
export function notice(err) {
  const n = document.getElementById('notice');
  if (!n) return;
  n.replaceChildren(...(err ? [el('p', { class: 'error' }, String(err.message || err))] : []));
  if (err) console.error(err);
}

/**
 * Subscribes to an SSE stream and calls `refresh(events)` at most once per `ms`, with the events
 * received since the last call (an empty list after `lagged`: re-read everything). The header's
 * status element says whether the page is live.
 */
export function live(url, refresh, ms = 700) {
  const status = document.getElementById('live');
  let pending = [];
  let timer = null;
  const flush = () => { timer = null; const evs = pending; pending = []; refresh(evs); };
  const src = new EventSource(url);
  const onEvent = (ev) => {
    pending.push(ev.type === 'lagged' ? { kind: 'lagged' } : JSON.parse(ev.data));
    if (!timer) timer = setTimeout(flush, ms);
  };
  for (const kind of ['experiment', 'trial', 'metrics', 'lagged']) src.addEventListener(kind, onEvent);
  let opened = false;
  src.onopen = () => {
    if (status) { status.textContent = '● live'; status.dataset.state = 'open'; }
    // Events sent while the stream was down are lost: after a reconnect, re-read everything.
    if (opened) onEvent({ type: 'lagged' });
    opened = true;
  };
  src.onerror = () => {
    if (!status) return;
    const closed = src.readyState === EventSource.CLOSED;
    status.textContent = closed ? '○ offline: reload the page for live updates' : '○ reconnecting';
    status.dataset.state = 'error';
  };
  return src;
}

/** The `<main>` element's data attributes: which experiment/trial the page is about. */
export const pageData = () => document.getElementById('main').dataset;
