// The browser end-to-end test of Sonde's web UI, driven by headless Chromium.
//
//   SONDE_URL=http://127.0.0.1:PORT SONDE_SCREENSHOT=/tmp/dash.png \
//   SONDE_DOWNLOADS=/tmp/dl [CHROMIUM=/usr/bin/chromium] node tests/e2e/ui.mjs
//
// Expects a daemon with the built-in probes over the sample cluster, the
// `hostile` probe in xss mode, cluster_name "<b>e2e</b>", and no tokens. Prints one line per step;
// exits 0 when every step passed, 1 on the first failure.

import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

// The header of the CSV report: host/src/report/csv.rs (HEADER).
const CSV_HEADER = 'probe,rule,severity,namespace,kind,name,apiVersion,message,remedy,labels';
const SEVERITIES = ['critical', 'high', 'medium', 'low', 'info'];
const XSS_SCRIPT = '<script>alert(1)</script>';
const XSS_IMG = '<img src=x onerror=alert(2)>';

function env(name, fallback) {
  const value = process.env[name] || fallback;
  if (!value) {
    console.error(`ui.mjs: set ${name}`);
    process.exit(2);
  }
  return value;
}

const base = env('SONDE_URL').replace(/\/+$/, '');
const screenshot = env('SONDE_SCREENSHOT');
const downloads = env('SONDE_DOWNLOADS');
const executablePath = env('CHROMIUM', '/usr/bin/chromium');

const dialogs = [];
const pageErrors = [];
const cspViolations = [];
const consoleErrors = [];

let browser;
let page;
let stepNumber = 0;

async function step(name, body) {
  stepNumber += 1;
  const started = Date.now();
  try {
    await body();
  } catch (err) {
    console.log(`not ok ${stepNumber} - ${name}: ${err.message.split('\n')[0]}`);
    if (err.message.includes('\n')) console.log(err.message.split('\n').slice(1).map((l) => `#   ${l}`).join('\n'));
    console.log(`${stepNumber - 1} passed, 1 failed`);
    await finish(1);
  }
  console.log(`ok ${stepNumber} - ${name} (${Date.now() - started} ms)`);
}

async function finish(code) {
  if (code !== 0) {
    for (const line of consoleErrors.slice(-10)) console.log(`#   console error: ${line}`);
    for (const line of pageErrors) console.log(`#   page error: ${line}`);
    try {
      if (page) console.log(`#   at ${page.url()}`);
    } catch {
      // the page is gone
    }
  }
  await browser?.close().catch(() => {});
  process.exit(code);
}

/**
 * Marks the view on screen as old, so that waitForView() waits for the one
 * the next navigation builds (hashchange fires after the hash has changed).
 */
async function markViewOld() {
  await page.evaluate(() => document.querySelector('section.view')?.setAttribute('data-e2e-old', ''));
}

/** Goes to a hash route without reloading, and waits until the view is built. */
async function go(hash, view) {
  await markViewOld();
  await page.evaluate((h) => {
    if (location.hash === h) window.dispatchEvent(new HashChangeEvent('hashchange'));
    else location.hash = h;
  }, hash);
  return waitForView(view);
}

async function waitForView(view) {
  const selector = `section.view[data-view="${view}"][data-ready]:not([data-e2e-old])`;
  try {
    await page.waitForSelector(selector, { timeout: 15000 });
  } catch {
    const seen = await page.evaluate(() => {
      const v = document.querySelector('section.view');
      return v ? `${v.getAttribute('data-view')} ready=${v.getAttribute('data-ready')}` : 'no view';
    });
    throw new Error(`the ${view} view did not finish loading within 15 s (saw: ${seen})`);
  }
  const state = await page.getAttribute(selector, 'data-ready');
  if (state !== 'true') {
    const error = await page.textContent(`${selector} [data-testid="error"]`).catch(() => '');
    throw new Error(`the ${view} view failed to load: ${error || state}`);
  }
}

async function texts(selector) {
  return page.$$eval(selector, (els) => els.map((e) => e.textContent));
}

async function eventCount() {
  return Number(await page.getAttribute('[data-testid="live-status"]', 'data-events'));
}

browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
}).catch((err) => {
  console.log(`not ok 0 - launch ${executablePath}: ${err.message.split('\n')[0]}`);
  process.exit(1);
});
const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1400, height: 900 } });
page = await context.newPage();
page.setDefaultTimeout(15000);

await step('dialogs, page errors and CSP violations are watched', async () => {
  page.on('dialog', (dialog) => {
    dialogs.push(`${dialog.type()}: ${dialog.message()}`);
    dialog.dismiss().catch(() => {});
  });
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.on('console', (msg) => {
    const text = msg.text();
    if (/Content[- ]Security[- ]Policy/i.test(text)) cspViolations.push(text);
    if (msg.type() === 'error') consoleErrors.push(text);
  });
  // Also the DOM's own report of a violation, recorded before any page script runs.
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`);
    });
  });
});

await step('the dashboard shows the score, the severity counts and the trend', async () => {
  const response = await page.goto(`${base}/`, { waitUntil: 'domcontentloaded' });
  if (!response || !response.ok()) throw new Error(`GET / answered ${response ? response.status() : 'nothing'}`);
  const csp = response.headers()['content-security-policy'] || '';
  if (!csp.includes("script-src 'self'")) throw new Error(`GET / has no strict Content-Security-Policy (saw "${csp}")`);
  await waitForView('dashboard');
  // The first runs may still be going: the dashboard refreshes itself when they end.
  const scored = await page.waitForFunction(
    () => /^\d+(\.\d+)?$/.test(document.querySelector('[data-testid="score"]')?.textContent.trim() ?? ''),
    null, { timeout: 60000 },
  ).catch(() => null);
  if (!scored) {
    const seen = await page.textContent('[data-testid="score"]').catch(() => 'no score element');
    throw new Error(`expected a numeric cluster score within 60 s, saw "${seen}"`);
  }
  for (const sev of SEVERITIES) {
    const text = (await page.textContent(`[data-testid="count-${sev}"]`).catch(() => null))?.trim();
    if (!/^\d+$/.test(text ?? '')) throw new Error(`expected a number as the ${sev} count, saw "${text}"`);
  }
  const loaded = await page.waitForFunction(() => {
    const img = document.querySelector('img[data-testid="trend"]');
    return img && img.complete && img.naturalWidth > 0;
  }, null, { timeout: 15000 }).catch(() => null);
  if (!loaded) {
    const seen = await page.evaluate(() => {
      const img = document.querySelector('img[data-testid="trend"]');
      return img ? `src=${img.getAttribute('src')} complete=${img.complete} naturalWidth=${img.naturalWidth}` : 'no trend image';
    });
    throw new Error(`expected the trend image to load (naturalWidth > 0), saw ${seen}`);
  }
  fs.mkdirSync(path.dirname(path.resolve(screenshot)), { recursive: true });
  await page.screenshot({ path: screenshot, fullPage: true });
});

await step('the header names the cluster, as text', async () => {
  await page.waitForSelector('[data-testid="cluster-name"]');
  const name = (await page.textContent('[data-testid="cluster-name"]')).trim();
  if (name !== '<b>e2e</b>') throw new Error(`expected the cluster_name as text, saw "${name}"`);
  const bold = await page.$$eval('header b', (els) => els.length);
  if (bold !== 0) throw new Error('the cluster name became markup');
});

await step('the findings explorer filters by severity', async () => {
  await go('#/findings', 'findings');
  for (const sev of SEVERITIES) await page.setChecked(`[data-testid="filter-severity-${sev}"]`, sev === 'high');
  await markViewOld();
  await page.click('[data-testid="apply-filters"]');
  await waitForView('findings');
  const hash = await page.evaluate(() => location.hash);
  const filter = new URLSearchParams(hash.split('?')[1] || '').get('severity');
  if (filter !== 'high') throw new Error(`expected the hash to carry severity=high, saw "${hash}"`);
  const severities = await page.$$eval('[data-testid="findings-table"] [data-testid="finding-row"]', (rows) => rows.map((r) => r.getAttribute('data-severity')));
  if (severities.length === 0) throw new Error('expected at least one high finding, the table has no rows');
  const other = severities.filter((s) => s !== 'high');
  if (other.length) throw new Error(`expected only high findings, saw ${[...new Set(other)].join(', ')}`);
  const badges = await texts('[data-testid="findings-table"] [data-testid="finding-severity"]');
  if (badges.some((b) => b.trim().toLowerCase() !== 'high')) throw new Error(`expected every severity cell to read "high", saw ${[...new Set(badges)].join(', ')}`);
  const total = (await page.textContent('[data-testid="findings-total"]')).trim();
  if (!/^\d+$/.test(total) || Number(total) < severities.length) throw new Error(`expected a total of at least ${severities.length}, saw "${total}"`);
});

await step('the probes page lists the collectors (no agent, no audit webhook in this daemon)', async () => {
  await go('#/probes', 'probes');
  await page.waitForSelector('[data-testid="collectors-table"]');
  const names = await texts('[data-testid="collector-row"] td:first-child');
  const expected = 'oom,exec,tcp,listen,http,kernel-log,kube-events,kube-audit';
  if (names.join(',') !== expected) throw new Error(`expected the collectors ${expected}, saw ${names.join(', ')}`);
  const states = (await texts('[data-testid="collector-row"] .pill')).map((t) => t.trim());
  if (states.slice(0, 6).some((t) => t !== 'no agent')) throw new Error(`expected "no agent" for each node collector, saw ${states.join(', ')}`);
  // The daemon reads the snapshot's events from its start; no audit webhook sends here.
  if (!['running', 'not read yet'].includes(states[6])) throw new Error(`expected the events kept or about to be, saw "${states[6]}"`);
  if (states[7] !== 'no records yet') throw new Error(`expected no audit records yet, saw "${states[7]}"`);
});

await step('the history page lists the events kept past their hour, filtered, as text', async () => {
  // The sample cluster's events are from 2026-11-22: a window from before them.
  await go('#/history?collector=kube-events&since=2026-11-01T00%3A00%3A00Z&where=type%3DWarning', 'history');
  await page.waitForSelector('[data-testid="history-table"]');
  const types = await texts('[data-testid="history-row"] td[data-field="type"]');
  if (!types.length || types.some((t) => t.trim() !== 'Warning')) throw new Error(`expected only Warning events, saw ${types.join(', ')}`);
  const reasons = await texts('[data-testid="history-row"] td[data-field="kind"]');
  if (!reasons.includes('BackOff')) throw new Error(`expected the BackOff event among ${reasons.join(', ')}`);
  const where = await page.inputValue('[data-testid="history-where"]');
  if (where !== 'type=Warning') throw new Error(`expected the filter box to hold the filter, saw "${where}"`);
  await go('#/history?collector=kube-events&where=nonsense', 'history');
  const error = (await page.textContent('[data-testid="error"]')).trim();
  if (error !== '"nonsense" is not field=value') throw new Error(`expected the bad filter named, saw "${error}"`);
});

await step('the traffic page adds up HTTP minutes per pod and route, a hostile route as text', async () => {
  // A node agent's batch (this daemon has no tokens, so the test may send
  // one): two pods' minutes of HTTP sums, one with server errors, and a
  // route a client chose to look like markup.
  const bounds = [];
  for (let b = 10; b < 100000000; b *= 1.1) if (bounds[bounds.length - 1] !== Math.round(b)) bounds.push(Math.round(b));
  const minuteOf = (back) => (Math.floor(Date.now() / 60000) - back) * 60000;
  const minute = (back, pod, route, requests, durationUs, errors) => {
    const buckets = new Array(bounds.length + 1).fill(0);
    buckets[bounds.findIndex((b) => b >= durationUs)] = requests;
    return {
      minute_ms: minuteOf(back), node: 'node-1', namespace: 'shop', pod, server: `10.0.0.${pod.length}:8080`,
      method: 'GET', route, requests, errors, client_errors: 0,
      duration_sum_us: requests * durationUs, duration_max_us: durationUs, buckets,
    };
  };
  const batch = {
    events: [], status: [],
    http: [
      minute(3, 'checkout-0', '/pay', 40, 20000, 10),
      minute(2, 'web-0', '/items/:id', 120, 1500, 0),
      minute(1, 'web-0', '/<img/src=x/onerror=alert(3)>', 30, 1500, 0),
    ],
  };
  const sent = await fetch(`${base}/api/v1/collectors/batches`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(batch),
  });
  if (!sent.ok) throw new Error(`the batch was refused: ${sent.status} ${await sent.text()}`);
  await go('#/traffic', 'traffic');
  await page.waitForSelector('[data-testid="traffic-table"]');
  const servers = await texts('[data-testid="traffic-row"] td[data-field="service"]');
  if (servers.join(',') !== 'shop/web-0,shop/checkout-0') throw new Error(`expected web-0 (150 requests) before checkout-0 (40), saw ${servers.join(', ')}`);
  const requests = await texts('[data-testid="traffic-row"] td[data-field="requests"]');
  if (requests.join(',') !== '150,40') throw new Error(`expected 150 and 40 requests, saw ${requests.join(', ')}`);
  const errors = await texts('[data-testid="traffic-row"] td[data-field="errors"]');
  if (errors[1].trim() !== '25 %') throw new Error(`expected checkout-0's 5xx at 25 %, saw "${errors[1]}"`);
  const flagged = await page.$$eval('[data-testid="traffic-row"] td[data-field="errors"].bad', (els) => els.length);
  if (flagged !== 1) throw new Error(`expected one server's errors flagged, saw ${flagged}`);
  const p50 = await texts('[data-testid="traffic-row"] td[data-field="p50"]');
  if (!/^1\.\d\d ms$/.test(p50[0].trim())) throw new Error(`expected web-0's median near 1.5 ms, saw "${p50[0]}"`);
  const tail = (await page.textContent('section.view')).trim();
  if (tail.endsWith('null')) throw new Error('the page ends in a stray "null"');
  const lines = await page.$$eval('[data-testid="traffic-row"] svg.sparkline polyline', (els) => els.length);
  if (lines !== 2) throw new Error(`expected a sparkline per server, saw ${lines}`);
  await markViewOld();
  await page.selectOption('[data-testid="traffic-by"]', 'route');
  await waitForView('traffic');
  await page.waitForSelector('[data-testid="traffic-row"] td[data-field="route"]');
  const routes = await texts('[data-testid="traffic-row"] td[data-field="route"]');
  if (routes.join(',') !== '/items/:id,/pay,/<img/src=x/onerror=alert(3)>') throw new Error(`expected the three routes busiest first, as text, saw ${routes.join(', ')}`);
  const images = await page.$$eval('[data-testid="traffic-table"] img', (els) => els.length);
  if (images !== 0) throw new Error(`a route became markup: ${images} img elements`);
  if (!page.url().includes('by=route')) throw new Error(`expected the choice in the address, saw ${page.url()}`);
  // A day: read in hours where the daemon has them, points of an hour.
  await markViewOld();
  await page.selectOption('[data-testid="traffic-window"]', '1440');
  await waitForView('traffic');
  await page.waitForSelector('[data-testid="traffic-table"]');
  const header = await page.textContent('[data-testid="traffic-table"] thead');
  if (!header.includes('Trend (1 h a point)')) throw new Error(`expected points of an hour over a day, saw "${header}"`);
  const dayRequests = await texts('[data-testid="traffic-row"] td[data-field="requests"]');
  if (dayRequests.join(',') !== '120,40,30') throw new Error(`expected the same requests over the day, saw ${dayRequests.join(', ')}`);
});

await step('"Run now" starts a run that the runs page follows live to success', async () => {
  await go('#/probes', 'probes');
  const button = '[data-testid="run-now-workload-audit"]';
  await page.waitForSelector(button);
  const eventsBefore = await eventCount();
  const clickedAt = Date.now();
  let run = null;
  let lastAnswer = '';
  // A run from the start or the schedule may be going: then the API answers 409.
  while (!run && Date.now() - clickedAt < 20000) {
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith('/api/v1/probes/workload-audit/run')),
      page.click(button),
    ]);
    if (response.status() === 202) {
      run = (await response.json()).run;
    } else {
      lastAnswer = `${response.status()} ${await response.text()}`;
      if (response.status() !== 409) break;
      await page.waitForTimeout(1000);
    }
  }
  if (!run || typeof run.id !== 'string') throw new Error(`expected POST /api/v1/probes/workload-audit/run to answer 202 with a run, saw ${lastAnswer || JSON.stringify(run)}`);
  const message = await page.textContent('[data-testid="probe-message"]');
  if (!message.includes('workload-audit')) throw new Error(`expected the probes page to confirm the run, saw "${message}"`);
  const created = Date.parse(run.created_at);
  if (!(created >= clickedAt - 5000)) throw new Error(`expected the run to be created after the click, its created_at is ${run.created_at}`);

  await go('#/runs', 'runs');
  const row = `[data-testid="runs-table"] tr[data-run-id="${run.id}"]`;
  const remaining = Math.max(1000, 30000 - (Date.now() - clickedAt));
  await page.waitForSelector(row, { timeout: remaining }).catch(() => {
    throw new Error(`expected run ${run.id} in the runs table within 30 s of the click`);
  });
  const probe = await page.getAttribute(row, 'data-probe');
  if (probe !== 'workload-audit') throw new Error(`expected the run's row to be of workload-audit, saw ${probe}`);
  const done = await page.waitForSelector(`${row}[data-status="succeeded"]`, { timeout: Math.max(1000, 30000 - (Date.now() - clickedAt)) })
    .catch(() => null);
  if (!done) {
    const status = await page.getAttribute(row, 'data-status');
    throw new Error(`expected run ${run.id} to reach succeeded within 30 s of the click, it is ${status}`);
  }
  const eventsAfter = await eventCount();
  if (!(eventsAfter > eventsBefore)) throw new Error(`expected run events on the event stream after the click, the count stayed at ${eventsAfter}`);
  const state = await page.getAttribute('[data-testid="live-status"]', 'data-state');
  if (state !== 'connected') throw new Error(`expected the event stream to be connected, it is ${state}`);
  const navigations = await page.evaluate(() => performance.getEntriesByType('navigation').length);
  if (navigations !== 1) throw new Error(`expected no page reload, saw ${navigations} navigations`);
});

await step('the CSV export downloads the report', async () => {
  await go('#/findings', 'findings');
  const [download] = await Promise.all([
    page.waitForEvent('download', { timeout: 15000 }),
    page.click('[data-testid="export-csv"]'),
  ]);
  const failure = await download.failure();
  if (failure) throw new Error(`the CSV download failed: ${failure}`);
  fs.mkdirSync(downloads, { recursive: true });
  const file = path.join(downloads, path.basename(download.suggestedFilename() || 'sonde-report.csv'));
  await download.saveAs(file);
  const text = fs.readFileSync(file, 'utf8').replace(/^\uFEFF/, '');
  const lines = text.split(/\r?\n/).filter((l) => l !== '');
  if (lines[0] !== CSV_HEADER) throw new Error(`expected the CSV to start with "${CSV_HEADER}", its first line is "${lines[0]}"`);
  if (lines.length < 2) throw new Error(`expected findings in the CSV, it has ${lines.length} line(s)`);
});

await step('hostile probe text renders as text', async () => {
  await go('#/findings?probe=hostile&status=all', 'findings');
  const messages = await texts('[data-testid="findings-table"] [data-testid="finding-message"]');
  if (!messages.some((m) => m === XSS_SCRIPT)) {
    throw new Error(`expected a message cell reading exactly ${XSS_SCRIPT}, saw ${JSON.stringify(messages)}`);
  }
  if (!messages.some((m) => m.includes(XSS_IMG))) {
    throw new Error(`expected a message cell containing ${XSS_IMG}, saw ${JSON.stringify(messages)}`);
  }
  const injected = await page.evaluate(() => ({
    images: [...document.images].map((i) => i.getAttribute('src') || '').filter((s) => s === 'x' || s.endsWith('/x')),
    scripts: [...document.querySelectorAll('script')].filter((s) => !/\/app\.js$/.test(s.src)).length,
    handlers: [...document.querySelectorAll('*')].filter((e) => [...e.attributes].some((a) => a.name.startsWith('on'))).length,
  }));
  if (injected.images.length) throw new Error(`a probe message became an <img>: src ${injected.images.join(', ')}`);
  if (injected.scripts) throw new Error(`a probe message became a <script> (${injected.scripts} besides app.js)`);
  if (injected.handlers) throw new Error(`${injected.handlers} element(s) carry an on* attribute`);
  await page.waitForTimeout(500);
  if (dialogs.length) throw new Error(`a dialog opened: ${dialogs.join('; ')}`);
});

await step('no dialog, page error or CSP violation happened', async () => {
  const domViolations = await page.evaluate(() => window.__csp || []);
  const problems = [
    ...dialogs.map((d) => `dialog ${d}`),
    ...pageErrors.map((e) => `page error ${e}`),
    ...cspViolations.map((c) => `console: ${c}`),
    ...domViolations.map((c) => `CSP violation: ${c}`),
  ];
  if (problems.length) throw new Error(`expected a quiet page, saw ${problems.length} problem(s)\n${problems.join('\n')}`);
});

console.log(`${stepNumber} passed, 0 failed`);
await finish(0);
