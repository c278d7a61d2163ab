// The experiment page at scale (scripts/bench-web.sh): time to interactive of a page with
// ORRERY_BENCH_TRIALS trials, and the time a re-sort takes, in Debian's chromium.
//
// Time to interactive: from navigation start to the moment the trials table is drawn with its
// controls live (experiment.js marks `orrery:table-ready` right after attaching them), on a
// fresh browser context (no cache). Re-sort: from the click on a column header to the new
// table drawn and painted (the next animation frame after the table is no longer busy).

import { chromium } from 'playwright-core';

const [url, runs = '10', sorts = '40'] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
const summary = (name, xs) => ({ name, n: xs.length, median_ms: +pct(xs, 0.5).toFixed(1), p95_ms: +pct(xs, 0.95).toFixed(1), max_ms: +Math.max(...xs).toFixed(1) });

const tti = [];
const panel = [];
for (let i = 0; i < Number(runs); i++) {
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await ctx.newPage();
  await page.goto(url);
  await page.waitForSelector('#trials[data-ready]');
  tti.push(await page.evaluate(() => performance.getEntriesByName('orrery:table-ready')[0].startTime));
  const t0 = await page.evaluate(() => performance.now());
  // The panel is drawn (a chart, or its "no data" note) once the analysis of all trials is in.
  await page.waitForFunction(() => !document.getElementById('panel').textContent.includes('Loading'), null, { timeout: 120000 });
  panel.push((await page.evaluate(() => performance.now())) - t0 + tti.at(-1));
  await ctx.close();
}

const ctx = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
const page = await ctx.newPage();
await page.goto(url);
await page.waitForSelector('#trials[data-ready]');
const total = await page.textContent('#page-info');
const keys = ['param:training.lr', 'index', 'objective', 'metric:train/loss', 'param:training.seed'];
const resort = [];
const byKey = Object.fromEntries(keys.map((k) => [k, []]));
for (let i = 0; i < Number(sorts); i++) {
  const key = keys[i % keys.length];
  resort.push(await page.evaluate((k) => new Promise((resolve) => {
    const root = document.getElementById('trials');
    const t0 = performance.now();
    const done = () => requestAnimationFrame(() => resolve(performance.now() - t0));
    const obs = new MutationObserver(() => {
      if (!root.hasAttribute('aria-busy')) { obs.disconnect(); done(); }
    });
    obs.observe(root, { attributes: true, attributeFilter: ['aria-busy'] });
    document.querySelector(`button[data-sort="${k}"]`).click();
  }), key));
  byKey[key].push(resort.at(-1));
}
await browser.close();
console.log(JSON.stringify({ url, table: total, results: [summary('time to interactive (table ready)', tti),
  summary('load to workload panel drawn', panel), summary('re-sort (click to painted table)', resort),
  ...keys.map((k) => summary(`re-sort by ${k}`, byKey[k]))] }));
