// Orrery's pages in a real browser: playwright-core driving Debian's chromium against `orrery
// serve` on a database filled by a real run (web/tests/sweep.yaml), and against a running
// `orrery run` (live.yaml) for live updates. scripts/browser-test.sh starts both and sets
// ORRERY_BASE (the served sweep), ORRERY_LIVE (the running experiment's page) and
// ORRERY_ARTIFACTS (where the screenshots go).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const BASE = process.env.ORRERY_BASE;
const LIVE = process.env.ORRERY_LIVE;
const ART = process.env.ORRERY_ARTIFACTS || 'target/browser-artifacts';
assert.ok(BASE && LIVE, 'run through scripts/browser-test.sh (ORRERY_BASE and ORRERY_LIVE)');
mkdirSync(ART, { recursive: true });

let browser;
let page;
const errors = [];
const visited = {}; // page kind -> address, for the accessibility checks

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    // Root in CI needs --no-sandbox; the closed network needs the background fetches off.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on('pageerror', (e) => errors.push(`${page.url()}: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`${page.url()}: console: ${m.text()}`); });
});

after(async () => {
  await browser?.close();
});

const shot = (name) => page.screenshot({ path: `${ART}/${name}.png`, fullPage: true });
const texts = (sel) => page.$$eval(sel, (els) => els.map((e) => e.textContent.trim()));
const points = (sel) => page.$eval(sel, (c) => Number(c.dataset.points || 0));
/** The experiment page's table is ready once it has drawn a response (not the loading text). */
const tableReady = () => page.waitForSelector('#trials[data-ready]:not([aria-busy])');
/** The values of one column of the trials table, by its header's sort key. */
async function column(sortKey) {
  return page.$$eval('#trials-table', ([t], key) => {
    const ths = [...t.querySelectorAll('thead tr:first-child th')];
    const i = ths.findIndex((th) => th.querySelector(`button[data-sort="${key}"]`));
    return [...t.querySelectorAll('tbody tr')].map((tr) => tr.children[i].textContent.trim());
  }, sortKey);
}
const pageInfo = () => page.textContent('#page-info');

describe('live updates of a running experiment', () => {
  // `orrery run` stops serving as soon as its last trial ends, so everything here is watched
  // while the trial is still running (web/tests/live.yaml: 3,000 steps, minutes on 2 cores;
  // scripts/browser-test.sh interrupts it once the tests are done).
  test('the table and the trial page redraw as the running trial reports, without a reload', async () => {
    await page.goto(LIVE);
    await tableReady();
    await page.evaluate(() => { window.__sameDocument = true; });
    const cell = '#trials-table tbody tr:first-child td.objective';
    await page.waitForFunction((s) => document.querySelector(s)?.textContent !== '—', cell, { timeout: 60000 });
    const first = await page.textContent(cell);
    await page.waitForFunction(([s, v]) => document.querySelector(s)?.textContent !== v, [cell, first], { timeout: 60000 });
    assert.equal(await page.textContent('#trials-table tbody tr:first-child .phase'), 'Running');
    assert.ok(await page.evaluate(() => window.__sameDocument), 'the experiment page was not reloaded');

    await page.click('#trials-table tbody tr:first-child td a');
    await page.waitForSelector('#curves[data-ready]');
    await page.waitForSelector('#main[data-facts-ready]');
    await page.evaluate(() => { window.__sameDocument = true; });
    const loss = 'figure[data-metric="train/loss"] canvas';
    await page.waitForFunction((s) => Number(document.querySelector(s)?.dataset.points) > 0, loss, { timeout: 60000 });
    const before = await points(loss);
    await page.waitForFunction(([s, n]) => Number(document.querySelector(s).dataset.points) > n, [loss, before], { timeout: 60000 });
    assert.ok(await page.evaluate(() => window.__sameDocument), 'the trial page was not reloaded');
    assert.match(await page.textContent('#history-table'), /Running/);
    await shot('live-trial');
  });
});

describe('pages of a finished LR sweep', () => {
  test('experiments list', async () => {
    await page.goto(BASE);
    const row = page.locator('#experiments tbody tr', { hasText: 'browser-lr-sweep' });
    await row.waitFor();
    const cells = await row.locator('td').allTextContents();
    assert.equal(cells[2], 'stability');
    assert.equal(cells[3], 'Succeeded');
    assert.match(cells[4], /10\/10/);
    assert.match(cells[5], /^\d+\.\d+ eval\/loss \(min\)$/);
    await shot('experiments');
    await row.locator('a').click();
    await tableReady();
  });

  test('experiment page: best trial first and highlighted, sorted by the objective', async () => {
    assert.equal(await pageInfo(), 'Trials 1–10 of 10');
    const ranks = await texts('#trials-table tbody tr td:nth-child(2)');
    assert.deepEqual(ranks, ['1best', '2', '3', '4', '5', '6', '7', '8', '—', '—']);
    assert.equal(await page.locator('#trials-table tbody tr.best').count(), 1);
    assert.equal(await page.getAttribute('th:has(button[data-sort="objective"])', 'aria-sort'), 'ascending');
    const loss = await page.$$eval('#trials-table tbody td.objective', (tds) => tds.map((td) => td.textContent));
    const ranked = loss.slice(0, 8).map(Number);
    assert.deepEqual(ranked, [...ranked].sort((a, b) => a - b), 'ranked trials in ascending loss');
    // Diverged trials are unranked and come last.
    assert.deepEqual((await texts('#trials-table tbody tr td:nth-child(4)')).slice(8), ['Diverged', 'Diverged']);
    await page.waitForFunction(() => Number(document.querySelector('#panel canvas')?.dataset.points) > 0);
    await shot('experiment');
    visited.experiment = page.url();
  });

  test('sorting by a parameter, with the mouse and the keyboard', async () => {
    await page.click('button[data-sort="param:training.lr"]');
    await page.waitForSelector('th[aria-sort="ascending"] button[data-sort="param:training.lr"]');
    await tableReady();
    let lrs = (await column('param:training.lr')).map(Number);
    assert.deepEqual(lrs, [...lrs].sort((a, b) => a - b));
    assert.match(page.url(), /sort=param%3Atraining\.lr/);
    await page.focus('button[data-sort="param:training.lr"]');
    await page.keyboard.press('Enter');
    await page.waitForSelector('th[aria-sort="descending"] button[data-sort="param:training.lr"]');
    lrs = (await column('param:training.lr')).map(Number);
    assert.deepEqual(lrs, [...lrs].sort((a, b) => b - a));
    assert.equal(lrs[0], 1);
    // Focus stays on the header, so the keyboard can go on sorting.
    assert.equal(await page.evaluate(() => document.activeElement?.dataset.sort), 'param:training.lr');
  });

  test('filtering by state and by a parameter value', async () => {
    await page.selectOption('#filter-phase', 'Diverged');
    await page.waitForFunction(() => document.getElementById('page-info')?.textContent === 'Trials 1–2 of 2');
    assert.deepEqual(await texts('#trials-table tbody .phase'), ['Diverged', 'Diverged']);
    await page.selectOption('#filter-phase', '');
    await page.waitForFunction(() => document.getElementById('page-info')?.textContent.endsWith('of 10'));
    await page.fill('[data-filter="param:params.qk_layernorm"]', 'true');
    await page.press('[data-filter="param:params.qk_layernorm"]', 'Enter');
    await page.waitForFunction(() => document.getElementById('page-info')?.textContent === 'Trials 1–5 of 5');
    assert.deepEqual(await column('param:params.qk_layernorm'), ['true', 'true', 'true', 'true', 'true']);
    assert.match(page.url(), /param\.params\.qk_layernorm=true/);
    await page.click('#clear-filters');
    await page.waitForFunction(() => document.getElementById('page-info')?.textContent.endsWith('of 10'));
    // A range on the objective: only finite values within it (the diverged trials' are above).
    // The bound lies between the 4th and 5th best values as the API gives them (not as shown).
    const api = await page.evaluate(async () => (await fetch(`/api/v1/experiments/${document.getElementById('main').dataset.experiment}/leaderboard`)).json());
    const finite = api.rows.map((r) => Number(r.objective)).filter(Number.isFinite).sort((a, b) => a - b);
    const bound = (finite[3] + finite[4]) / 2;
    await page.fill('[data-filter="max:objective"]', String(bound));
    await page.press('[data-filter="max:objective"]', 'Enter');
    await page.waitForFunction(() => document.getElementById('page-info')?.textContent === 'Trials 1–4 of 4');
    const kept = await page.$$eval('#trials-table tbody td.objective', (tds) => tds.map((td) => Number(td.textContent)));
    assert.ok(kept.every((v) => v <= bound + 5e-4), `${kept} ≤ ${bound}`);
    // Not a number: refused in the page, the view unchanged.
    await page.fill('[data-filter="min:objective"]', '0x10');
    await page.press('[data-filter="min:objective"]', 'Enter');
    assert.equal(await page.$eval('[data-filter="min:objective"]', (i) => i.validity.valid), false);
    assert.doesNotMatch(page.url(), /min\.objective/);
    assert.match(page.url(), /max\.objective=/);
    await page.click('#clear-filters');
    await page.waitForFunction(() => document.getElementById('page-info')?.textContent.endsWith('of 10'));
    // A view the server refuses (an address typed by hand) lands on the default view.
    await page.goto(`${page.url().split('?')[0]}?order=up&limit=5000`);
    await tableReady();
    assert.equal(new URL(page.url()).search, '');
    assert.equal(await pageInfo(), 'Trials 1–10 of 10');
  });

  test('server-side pagination', async () => {
    const url = new URL(page.url());
    url.search = '?limit=4';
    await page.goto(url.toString());
    await tableReady();
    assert.equal(await pageInfo(), 'Trials 1–4 of 10');
    assert.ok(await page.isDisabled('#page-prev'));
    const first = await column('index');
    await page.click('#page-next');
    await page.waitForFunction(() => document.getElementById('page-info').textContent === 'Trials 5–8 of 10');
    const second = await column('index');
    await page.click('#page-next');
    await page.waitForFunction(() => document.getElementById('page-info').textContent === 'Trials 9–10 of 10');
    assert.ok(await page.isDisabled('#page-next'));
    const third = await column('index');
    const all = [...first, ...second, ...third];
    assert.equal(new Set(all).size, 10, `each trial on exactly one page: ${all}`);
    assert.match(page.url(), /offset=8/);
  });

  test('column chooser hides a column and remembers it', async () => {
    await page.goto(page.url().split('?')[0]);
    await tableReady();
    assert.equal(await page.locator('button[data-sort="param:training.seed"]').count(), 0, 'no seed column: not swept');
    await page.click('details.chooser summary');
    await page.uncheck('input[data-col="param:params.qk_layernorm"]');
    await page.waitForFunction(() => !document.querySelector('button[data-sort="param:params.qk_layernorm"]'));
    await page.reload();
    await tableReady();
    assert.equal(await page.locator('button[data-sort="param:params.qk_layernorm"]').count(), 0);
    await page.click('details.chooser summary');
    await page.check('input[data-col="param:params.qk_layernorm"]');
    await page.waitForSelector('button[data-sort="param:params.qk_layernorm"]');
  });

  test('compare view: overlaid curves and the parameter diff', async () => {
    await page.keyboard.press('Escape'); // closes the column chooser
    await page.waitForSelector('details.chooser:not([open])');
    await page.check('#trials-table tbody tr:nth-child(1) input[type=checkbox]');
    await page.check('#trials-table tbody tr:nth-child(2) input[type=checkbox]');
    await page.check('#trials-table tbody tr:nth-child(10) input[type=checkbox]');
    assert.equal(await page.textContent('#compare-link'), 'Compare selected (3)');
    await page.click('#compare-link');
    await page.waitForSelector('#compare[data-ready]');
    await page.waitForFunction(() => Number(document.querySelector('#compare canvas')?.dataset.points) > 0);
    assert.equal(await page.locator('#compare .legend li').count(), 3);
    const diffRows = await texts('#param-diff tbody tr.diff th');
    assert.ok(diffRows.includes('training.lr'), `training.lr differs: ${diffRows}`);
    assert.equal(await page.locator('#compare-summary tbody tr').count(), 3);
    await shot('compare');
    visited.compare = page.url();
    await page.selectOption('#compare-metric', 'train/loss');
    await page.waitForFunction(() => document.querySelector('#compare figcaption')?.textContent.startsWith('train/loss'));
    await page.waitForFunction(() => Number(document.querySelector('#compare canvas')?.dataset.points) > 0);
    await page.click('#compare .legend li:nth-child(3) button');
    assert.equal(await page.locator('#compare .legend li').count(), 2);
    assert.match(page.url(), /trials=\d+,\d+(&|$)/);
  });

  test('trial page: curves drawn, log axes, smoothing, zoom, history', async () => {
    await page.click('#compare .legend li:first-child a');
    await page.waitForSelector('#curves[data-ready]');
    await page.waitForSelector('#main[data-facts-ready]');
    const objective = 'figure[data-metric="eval/loss"] canvas';
    const loss = 'figure[data-metric="train/loss"] canvas';
    assert.ok((await points(objective)) > 0);
    const n = await points(loss);
    assert.ok(n >= 10, `train/loss has ${n} points`);
    assert.ok(await page.locator('figure.chart canvas').count() >= 10, 'a chart per metric');
    await page.check('#log-y');
    assert.equal(await points(loss), n, 'log y keeps every (positive) loss point');
    await page.fill('#smoothing', '0.8');
    await page.dispatchEvent('#smoothing', 'input');
    // Zoom: drag across the middle of the plot shows fewer points; double-click resets.
    await page.locator(loss).scrollIntoViewIfNeeded();
    const box = await page.locator(loss).boundingBox();
    await page.mouse.move(box.x + box.width * 0.4, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.7, box.y + box.height / 2, { steps: 5 });
    await page.mouse.up();
    const zoomed = await points(loss);
    assert.ok(zoomed > 0 && zoomed < n, `zoomed in: ${zoomed} of ${n} points`);
    await page.dblclick(loss);
    assert.equal(await points(loss), n);
    await page.fill('#metric-filter', 'eval/loss');
    const shown = await page.$$eval('figure[data-metric]', (fs) => fs.filter((f) => !f.hidden).map((f) => f.dataset.metric));
    assert.ok(shown.length >= 1 && shown.every((m) => m.includes('eval/loss')), `${shown}`);
    await page.fill('#metric-filter', '');
    await page.uncheck('#log-y');
    await page.fill('#smoothing', '0');
    await page.dispatchEvent('#smoothing', 'input');
    const history = await texts('#history-table tbody tr td:first-child');
    assert.deepEqual(history, ['Pending', 'Running', 'Succeeded']);
    assert.match(await page.textContent('#params'), /training\.lr/);
    // What ran it: the worker's provenance.
    const pv = Object.fromEntries(await page.$$eval('#provenance-table tr', (rs) => rs.map((r) => [r.cells[0]?.textContent || r.querySelector('th').textContent, r.querySelector('td').textContent])));
    assert.match(pv.libtorch, /^2\.11\.0$/);
    assert.match(pv.device, /^cpu \(.+, \d+ threads\)$/);
    assert.match(pv['configuration SHA-256'], /^[0-9a-f]{64}$/);
    assert.match(pv['data SHA-256'], /^[0-9a-f]{64}$/);
    // Its final weights, uploaded by the worker: listed, and the link downloads exactly them.
    assert.deepEqual(await texts('#artifacts-table tbody tr td:first-child'), ['model']);
    const link = page.locator('#artifacts-table a', { hasText: 'model' });
    const sha = await page.locator('#artifacts-table code').getAttribute('title');
    const got = await page.request.get(new URL(await link.getAttribute('href'), page.url()).href);
    assert.equal(got.status(), 200);
    assert.equal(got.headers().etag, `"${sha}"`);
    assert.equal(createHash('sha256').update(await got.body()).digest('hex'), sha);
    await shot('trial');
    visited.trial = page.url();
    // The log of its one attempt, as the worker wrote it.
    await page.click('#logs a');
    assert.match(await page.textContent('body'), /starting trial[\s\S]*trial succeeded/);
    assert.equal(await page.evaluate(() => document.contentType), 'text/plain');
    await page.goBack();
  });

  test('aioli panel: per-mixture results, the fitted mixing law, the learned mixture and A', async () => {
    await page.goto(BASE);
    const row = page.locator('#experiments tbody tr', { hasText: 'browser-mixing' });
    await row.waitFor();
    assert.equal((await row.locator('td').allTextContents())[2], 'aioli');
    await row.locator('a').click();
    await tableReady();
    await page.waitForSelector('#methods-table');
    // Five static mixtures and one aioli trial.
    assert.equal(await page.locator('#methods-table tbody tr').count(), 6);
    await page.waitForSelector('#mixing-law-table');
    assert.deepEqual(await texts('#mixing-law-table tbody tr td:first-child'), ['easy', 'hard', 'shared']);
    assert.match(await page.textContent('#mixing-law-table caption'), /on 5 static trials \(column shared pinned to 0\); optimum easy 0\.\d+, hard/);
    for (const r2 of await texts('#mixing-law-table tbody tr td:last-child')) {
      assert.ok(Number(r2) <= 1 && Number.isFinite(Number(r2)), r2);
    }
    // The aioli trial's mixture over steps: one chart, a curve per group, drawn.
    assert.equal(await page.locator('#panel figure.mixture-chart').count(), 1);
    assert.match(await page.textContent('#panel figure.mixture-chart figcaption'), /Mixture over steps: params\.method="aioli" \(mix\/p, mean over 1 seed\)/);
    await page.waitForFunction(() => Number(document.querySelector('#panel figure.mixture-chart canvas')?.dataset.points) > 0);
    // Its interaction matrices as heat maps: A and Â, 3 × 3, every cell a number with a tint.
    assert.deepEqual(await page.locator('#panel table.heatmap').evaluateAll((ts) => ts.map((t) => t.dataset.metric)), ['mix/A', 'mix/A_raw']);
    for (const t of await page.locator('#panel table.heatmap').all()) {
      const cells = await t.locator('tbody td').evaluateAll((tds) => tds.map((td) => [td.textContent, td.style.background]));
      assert.equal(cells.length, 9);
      for (const [v, bg] of cells) {
        assert.ok(Number.isFinite(Number(v)), v);
        assert.match(bg, /rgba\(/);
      }
    }
    visited.aioli = page.url();
    await shot('aioli-panel');
  });

  test('bad addresses get a clear answer', async () => {
    const r = await page.goto(`${BASE}/experiments/999`);
    assert.equal(r.status(), 404);
    assert.match(await page.textContent('body'), /experiment 999 not found/);
    const c = await page.goto(`${BASE}/experiments/1/compare?trials=1`);
    assert.equal(c.status(), 200);
    await page.waitForSelector('#compare[data-ready]');
    assert.match(await page.textContent('#compare'), /Pick two or more trials/);
  });

  test('accessibility: no serious or critical WCAG 2 A/AA violations (axe-core)', async () => {
    const axe = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
    visited.experiments = BASE;
    const found = [];
    for (const [kind, url] of Object.entries(visited)) {
      await page.goto(url);
      // Everything drawn: the table and its panel, the curves and the facts, the compare view.
      await page.waitForSelector('#panel[data-ready], #main[data-facts-ready] #curves[data-ready], #compare[data-ready], #experiments');
      await page.addScriptTag({ path: axe });
      const r = await page.evaluate(async () => {
        const res = await window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa'] } });
        return { passes: res.passes.length, violations: res.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length, help: v.help })) };
      });
      assert.ok(r.passes > 5, `axe ran its rules on the ${kind} page`);
      for (const v of r.violations) found.push({ kind, ...v });
    }
    writeFileSync(`${ART}/accessibility.json`, JSON.stringify(found, null, 1));
    assert.equal(Object.keys(visited).length, 5);
    assert.deepEqual(found.filter((v) => v.impact === 'serious' || v.impact === 'critical'), [], JSON.stringify(found));
  });

  test('no script errors on any page', () => {
    // The 404 page above logs its own failed load; everything else must be clean.
    // `orrery run` stops its server when the live experiment ends: that page's reconnects fail.
    const liveOrigin = new URL(LIVE).origin;
    const unexpected = errors.filter((e) => !e.includes('/experiments/999')
      && !(e.startsWith(liveOrigin) && e.includes('net::ERR_')));
    assert.deepEqual(unexpected, []);
  });
});
