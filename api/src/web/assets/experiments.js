// The experiments list is rendered by the server; this keeps it current: on any change it
// re-reads the page and swaps in the new table.

import { live } from './common.js';

live('/api/v1/events', async () => {
  const r = await fetch(location.href, { headers: { accept: 'text/html' } });
  if (!r.ok) return;
  const fresh = new DOMParser().parseFromString(await r.text(), 'text/html');
  const main = document.getElementById('main');
  main.replaceChildren(...fresh.getElementById('main').childNodes);
}, 1500);
