// The experiments list is rendered by the server; this keeps it current: when an experiment or
// a trial changes phase it re-reads the page and swaps in the new table body (the newest answer
// wins), keeping the focus on the same experiment's link.

import { live, notice } from './common.js';

let seq = 0;
live('/api/v1/events', async (events) => {
  if (!events.some((e) => e.kind !== 'metrics')) return;
  const mine = ++seq;
  try {
    const r = await fetch(location.href, { headers: { accept: 'text/html' } });
    if (!r.ok) throw new Error(`${location.href}: ${r.status} ${r.statusText}`);
    const fresh = new DOMParser().parseFromString(await r.text(), 'text/html');
    if (mine !== seq) return;
    const body = fresh.querySelector('#experiments tbody');
    const table = document.querySelector('#experiments');
    if (!body || !table) {
      // The first experiment arrived (or the last left): the whole list changes shape.
      document.getElementById('main').replaceChildren(...fresh.getElementById('main').childNodes);
      return;
    }
    const focused = document.activeElement?.closest('tr')?.dataset.id;
    table.tBodies[0].replaceWith(body);
    if (focused) table.querySelector(`tr[data-id="${focused}"] a`)?.focus();
    notice(null);
  } catch (err) {
    notice(err);
  }
}, 1500);
