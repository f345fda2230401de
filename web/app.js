// Sonde's web UI: a dependency-free ES module served by `sonde serve`.
// It talks to the JSON API of web/API.md, routes on the location hash and
// follows runs live through the server-sent event stream.
//
// Everything the API returns is untrusted probe output: it reaches the page
// only as text nodes, `el.value` or attributes set through `h()`, never as
// markup. The daemon's Content-Security-Policy forbids inline script and style.

const SEVERITIES = ['critical', 'high', 'medium', 'low', 'info'];
const FINDING_STATUSES = ['open', 'all', 'new', 'persisting', 'fixed'];
const RUN_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'interrupted'];
const REPORT_FORMATS = [
  ['json', 'JSON'], ['yaml', 'YAML'], ['csv', 'CSV'],
  ['html', 'HTML'], ['sarif', 'SARIF'], ['junit', 'JUnit'],
];
const TOKEN_KEY = 'sonde.token';
const PAGE_SIZE = 50;

// ---------------------------------------------------------------------------
// DOM helpers

const URL_ATTRIBUTES = new Set(['href', 'src', 'action', 'formaction', 'xlink:href', 'poster', 'srcset', 'data']);

/** Whether a URL may go into an href/src: relative, http(s) or blob; never javascript:. */
export function safeUrl(url) {
  // Browsers ignore ASCII whitespace and controls inside a scheme: so do we.
  const compact = String(url).replace(/[\u0000-\u0020\u007f]+/g, '').toLowerCase();
  const scheme = /^([a-z][a-z0-9+.-]*):/.exec(compact);
  return !scheme || ['http', 'https', 'blob'].includes(scheme[1]);
}

/**
 * Creates an element. `attrs` are set with setAttribute (an `on*` name or a
 * `style` attribute is a bug and throws; an unsafe URL is dropped); `true`
 * sets an empty attribute, `null`/`undefined`/`false` none. Children are
 * nodes, arrays, or anything else, which becomes a text node.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    const lower = name.toLowerCase();
    if (lower.startsWith('on')) throw new Error(`h(): refusing event handler attribute ${name}`);
    if (lower === 'style') throw new Error('h(): refusing a style attribute (use a class)');
    const text = value === true ? '' : String(value);
    if (URL_ATTRIBUTES.has(lower) && !safeUrl(text)) {
      console.warn(`h(): dropped an unsafe ${name} on <${tag}>`);
      continue;
    }
    el.setAttribute(name, text);
  }
  appendChildren(el, children);
  return el;
}

function appendChildren(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) appendChildren(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Adds an event listener and returns the element, for use inside h(). */
function on(el, type, listener) {
  el.addEventListener(type, listener);
  return el;
}

/**
 * Probe text as it should be seen: control characters other than newline and
 * tab are shown as escapes (ESC as \x1b, CR as \r) and bidirectional
 * overrides are named, so a message cannot hide, recolour or reorder text.
 */
export function visibleText(value) {
  return String(value ?? '')
    .replace(/\r/g, '\\r')
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
    .replace(/[\u202a-\u202e\u2066-\u2069]/g, (c) => `[U+${c.charCodeAt(0).toString(16).toUpperCase()}]`);
}

/** One path segment of an API URL. */
function seg(value) {
  const text = String(value);
  if (text === '' || text === '.' || text === '..') throw new Error(`not a valid name: "${text}"`);
  return encodeURIComponent(text);
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined) search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

// ---------------------------------------------------------------------------
// Formatting

function fmtTime(value) {
  if (!value) return '—';
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return `${date.toISOString().slice(0, 19).replace('T', ' ')}Z`;
}

function fmtRelative(value) {
  const date = new Date(value);
  if (!value || Number.isNaN(date.getTime())) return '';
  const seconds = Math.round((date.getTime() - Date.now()) / 1000);
  const abs = Math.abs(seconds);
  const [n, unit] = abs < 90 ? [abs, 's'] : abs < 5400 ? [Math.round(abs / 60), 'min']
    : abs < 129600 ? [Math.round(abs / 3600), 'h'] : [Math.round(abs / 86400), 'd'];
  return seconds >= 0 ? `in ${n} ${unit}` : `${n} ${unit} ago`;
}

function timeEl(value) {
  return h('time', { datetime: value || null, title: value ? `${value} (${fmtRelative(value)})` : null }, fmtTime(value));
}

function fmtDuration(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(Number(ms))) return '—';
  const n = Number(ms);
  if (n < 1000) return `${Math.round(n)} ms`;
  if (n < 60000) return `${(n / 1000).toFixed(1)} s`;
  const minutes = Math.floor(n / 60000);
  return `${minutes} min ${String(Math.round((n % 60000) / 1000)).padStart(2, '0')} s`;
}

function fmtNumber(value) {
  const n = Number(value);
  if (!Number.isFinite(n)) return '—';
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

function sevBadge(severity) {
  const known = SEVERITIES.includes(severity) ? severity : 'unknown';
  return h('span', { class: `sev sev-${known}`, 'data-testid': 'finding-severity' }, visibleText(severity));
}

function runStatusBadge(status) {
  const known = RUN_STATUSES.includes(status) ? status : 'unknown';
  return h('span', { class: `run-status run-${known}` }, visibleText(status));
}

// ---------------------------------------------------------------------------
// Links into the UI

function ruleHref(probe, rule) {
  return `#/rule/${encodeURIComponent(probe)}/${encodeURIComponent(rule)}`;
}

function runHref(id) {
  return `#/runs/${encodeURIComponent(id)}`;
}

function runsHref(probe) {
  return `#/runs${query({ probe })}`;
}

function resourceLabel(resource) {
  const kindName = [resource.kind, resource.name].filter(Boolean).join('/');
  return resource.namespace ? `${resource.namespace}/${kindName}` : kindName;
}

function resourceLink(resource) {
  if (!resource || (!resource.kind && !resource.name)) {
    return h('span', { class: 'muted', title: 'a finding about the cluster as a whole' }, 'cluster-wide');
  }
  const href = `#/resource${query({ namespace: resource.namespace ?? '', kind: resource.kind ?? '', name: resource.name ?? '' })}`;
  return h('a', { href, title: resource.api_version || null }, visibleText(resourceLabel(resource)));
}

// ---------------------------------------------------------------------------
// The API client and the token

const session = {
  token: '',
  whoami: null,
};

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function authHeaders() {
  return session.token ? { Authorization: `Bearer ${session.token}` } : {};
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && body.error && typeof body.error.message === 'string') return body.error.message;
  } catch {
    // not JSON: fall through
  }
  return `${response.status} ${response.statusText}`.trim();
}

/** Fetches an API path with the token; throws ApiError on anything but 2xx. */
async function request(path, { method = 'GET', accept = 'application/json', body } = {}) {
  let response;
  try {
    response = await fetch(path, { method, body, cache: 'no-store', headers: { Accept: accept, ...authHeaders() } });
  } catch (err) {
    throw new ApiError(0, `The daemon cannot be reached (${err.message}).`);
  }
  if (response.status === 401) {
    const message = await errorMessage(response);
    askForToken(session.token ? 'That token was refused.' : 'The daemon needs a token.');
    throw new ApiError(401, `Not signed in: ${message}`);
  }
  if (!response.ok) throw new ApiError(response.status, await errorMessage(response));
  return response;
}

async function api(path, options) {
  const response = await request(path, options);
  if (response.status === 204) return null;
  return response.json();
}

function setToken(value) {
  session.token = value;
  try {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // storage disabled: keep it in memory for this page
  }
}

function askForToken(reason) {
  const slot = document.getElementById('auth');
  if (slot.querySelector('form')) {
    slot.querySelector('[data-testid="token-reason"]').textContent = reason;
    return;
  }
  const input = h('input', {
    id: 'token-input', type: 'password', name: 'token', autocomplete: 'current-password',
    required: true, 'data-testid': 'token-input',
  });
  const form = h('form', { class: 'token-form', 'data-testid': 'token-form' },
    h('p', { 'data-testid': 'token-reason', role: 'alert' }, reason),
    h('label', { for: 'token-input' }, 'API token'),
    input,
    h('button', { type: 'submit', 'data-testid': 'token-submit' }, 'Sign in'));
  on(form, 'submit', (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!/^[\x21-\x7e]+$/.test(value)) {
      form.querySelector('[data-testid="token-reason"]').textContent = 'A token is printable ASCII without spaces.';
      return;
    }
    setToken(value);
    slot.replaceChildren();
    loadWhoami();
    events.start();
    render();
  });
  slot.replaceChildren(form);
  input.focus();
}

async function loadWhoami() {
  const slot = document.getElementById('whoami');
  try {
    session.whoami = await api('/api/v1/whoami');
  } catch {
    session.whoami = null;
    slot.replaceChildren();
    return;
  }
  const { role, auth, cluster } = session.whoami;
  const children = [];
  if (cluster) children.push(h('span', { class: 'cluster', 'data-testid': 'cluster-name', title: 'this cluster (cluster_name)' }, visibleText(cluster)));
  children.push(h('span', { class: 'role', title: auth ? 'signed in with a token' : 'the daemon has no tokens' }, visibleText(role)));
  if (session.token) {
    children.push(on(h('button', { type: 'button', class: 'link-button', 'data-testid': 'sign-out' }, 'Sign out'), 'click', () => {
      setToken('');
      session.whoami = null;
      slot.replaceChildren();
      events.start();
      render();
    }));
  }
  slot.replaceChildren(...children);
}

// ---------------------------------------------------------------------------
// Server-sent events, read with fetch so the Authorization header goes along

/** Incremental parser of the text/event-stream format. */
export class SseParser {
  constructor(onEvent, { maxLine = 1 << 20 } = {}) {
    this.onEvent = onEvent;
    this.maxLine = maxLine;
    this.buffer = '';
    this.type = '';
    this.data = [];
    this.retry = null;
  }

  feed(text) {
    this.buffer += text;
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      if (!match) break;
      // A CR at the very end may be the first half of a CRLF still to come.
      if (match[0] === '\r' && match.index === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      this.line(line);
    }
    if (this.buffer.length > this.maxLine) {
      // A runaway line: drop it rather than grow without bound.
      this.buffer = '';
      this.data = [];
    }
  }

  line(line) {
    if (line === '') {
      if (this.data.length) this.onEvent(this.type || 'message', this.data.join('\n'));
      this.type = '';
      this.data = [];
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.type = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'retry' && /^\d+$/.test(value)) this.retry = Number(value);
  }
}

const events = {
  controller: null,
  listeners: new Set(),
  count: 0,
  state: 'connecting',

  start() {
    this.controller?.abort();
    const controller = new AbortController();
    this.controller = controller;
    this.loop(controller.signal);
  },

  async loop(signal) {
    let delay = 1000;
    while (!signal.aborted) {
      this.setState('connecting');
      let retry = null;
      try {
        const response = await fetch('/api/v1/events', {
          signal, cache: 'no-store', headers: { Accept: 'text/event-stream', ...authHeaders() },
        });
        if (response.status === 401) {
          // The token form restarts the stream once a token is given.
          this.setState('unauthorised');
          askForToken(session.token ? 'That token was refused.' : 'The daemon needs a token.');
          return;
        }
        if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
        this.setState('connected');
        delay = 1000;
        const parser = new SseParser((type, data) => this.dispatch(type, data));
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          parser.feed(decoder.decode(value, { stream: true }));
        }
        retry = parser.retry;
      } catch (err) {
        if (signal.aborted) return;
        console.warn(`event stream: ${err.message}; reconnecting`);
      }
      if (signal.aborted) return;
      this.setState('disconnected');
      await sleep(retry ?? delay, signal);
      delay = Math.min(delay * 2, 15000);
    }
  },

  dispatch(type, data) {
    if (type !== 'run') return;
    let run;
    try {
      run = JSON.parse(data);
    } catch {
      console.warn('event stream: a run event that is not JSON');
      return;
    }
    if (!run || typeof run.id !== 'string') return;
    this.count += 1;
    const live = document.getElementById('live');
    live.setAttribute('data-events', String(this.count));
    for (const listener of [...this.listeners]) {
      try {
        listener(run);
      } catch (err) {
        console.warn(`run event listener: ${err.message}`);
      }
    }
  },

  setState(state) {
    this.state = state;
    const live = document.getElementById('live');
    live.setAttribute('data-state', state);
    live.className = `live live-${state}`;
    live.title = `Event stream: ${state}`;
  },
};

/** How far along a run is, so an older event never undoes a newer state. */
function runRank(status) {
  return status === 'queued' ? 0 : status === 'running' ? 1 : 2;
}

function isActive(run) {
  return run.status === 'queued' || run.status === 'running';
}

// ---------------------------------------------------------------------------
// Routing

const routes = [
  [/^\/$/, 'dashboard', dashboardView],
  [/^\/findings$/, 'findings', findingsView],
  [/^\/resource$/, 'resource', resourceView],
  [/^\/rule\/([^/]+)\/([^/]+)$/, 'rule', ruleView],
  [/^\/runs$/, 'runs', runsView],
  [/^\/runs\/([^/]+)$/, 'run', runView],
  [/^\/probes$/, 'probes', probesView],
  [/^\/history$/, 'history', historyView],
  [/^\/traffic$/, 'traffic', trafficView],
];

const NAV_FOR_VIEW = { dashboard: 'dashboard', findings: 'findings', resource: 'findings', rule: 'findings', runs: 'runs', run: 'runs', probes: 'probes', history: 'history', traffic: 'traffic' };

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const mark = raw.indexOf('?');
  const path = (mark < 0 ? raw : raw.slice(0, mark)) || '/';
  return { path, params: new URLSearchParams(mark < 0 ? '' : raw.slice(mark + 1)) };
}

function decodeSegment(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** What a view owns: its element, its run listeners and timers, all dropped when it goes. */
class ViewContext {
  constructor(el) {
    this.el = el;
    this.alive = true;
    this.listeners = [];
    this.timers = new Set();
  }

  /** Appends to the view what is given, leaving out null (what is not there). */
  append(...children) {
    appendChildren(this.el, children);
  }

  onRun(listener) {
    events.listeners.add(listener);
    this.listeners.push(listener);
  }

  /** Calls fn once, ms after the last call with the same key. */
  debounce(key, ms, fn) {
    const timers = (this.debounced ??= new Map());
    clearTimeout(timers.get(key));
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (this.alive) fn();
    }, ms);
    timers.set(key, timer);
    this.timers.add(timer);
  }

  dispose() {
    this.alive = false;
    for (const listener of this.listeners) events.listeners.delete(listener);
    for (const timer of this.timers) clearTimeout(timer);
  }
}

let currentView = null;

function render() {
  currentView?.dispose();
  const { path, params } = parseHash();
  let found = null;
  for (const [pattern, name, view] of routes) {
    const match = pattern.exec(path);
    if (match) {
      found = { name, view, args: match.slice(1).map(decodeSegment) };
      break;
    }
  }
  const name = found ? found.name : 'not-found';
  const el = h('section', { class: 'view', 'data-view': name });
  const ctx = new ViewContext(el);
  currentView = ctx;
  document.getElementById('app').replaceChildren(el);
  for (const link of document.querySelectorAll('[data-nav]')) {
    const active = link.getAttribute('data-nav') === NAV_FOR_VIEW[name];
    link.classList.toggle('active', active);
    if (active) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (!found) {
    document.title = 'Not found · Sonde';
    el.append(h('h1', {}, 'Not found'), h('p', {}, 'No page here. ', h('a', { href: '#/' }, 'Back to the dashboard.')));
    el.setAttribute('data-ready', 'true');
    return;
  }
  Promise.resolve()
    .then(() => found.view(ctx, params, ...found.args))
    .then(() => {
      if (ctx.alive) el.setAttribute('data-ready', 'true');
    }, (err) => {
      if (!ctx.alive) return;
      el.append(errorBox(err));
      el.setAttribute('data-ready', 'error');
    });
}

function setTitle(text) {
  document.title = `${text} · Sonde`;
}

function errorBox(err) {
  const status = err instanceof ApiError ? err.status : 0;
  const text = status === 401 ? 'Sign in with a token (above) to see this page.'
    : status === 403 ? `Not allowed: ${err.message}` : err.message || String(err);
  return h('p', { class: 'error', role: 'alert', 'data-testid': 'error', 'data-status': status || null }, visibleText(text));
}

// ---------------------------------------------------------------------------
// Shared pieces

function table(columns, rows, attrs = {}) {
  return h('table', attrs,
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, rows));
}

const FINDING_COLUMNS = ['Severity', 'Probe', 'Rule', 'Resource', 'Message', 'First seen', 'Last seen', 'Status'];

function findingRow(finding) {
  const labels = Array.isArray(finding.labels) ? finding.labels : [];
  return h('tr', {
    'data-testid': 'finding-row', 'data-finding-id': finding.id,
    'data-severity': finding.severity, 'data-status': finding.status,
  },
  h('td', {}, sevBadge(finding.severity)),
  h('td', {}, h('a', { href: runsHref(finding.probe), title: 'runs of this probe' }, visibleText(finding.probe))),
  h('td', {}, h('a', { href: ruleHref(finding.probe, finding.rule) }, visibleText(finding.rule))),
  h('td', {},
    resourceLink(finding.resource),
    labels.length ? h('div', { class: 'labels' }, labels.map(([k, v]) => h('span', { class: 'label' }, visibleText(`${k}=${v}`)))) : null),
  h('td', { class: 'message', 'data-testid': 'finding-message', title: finding.remedy ? `Remedy: ${finding.remedy}` : null }, visibleText(finding.message)),
  h('td', { class: 'nowrap' }, timeEl(finding.first_seen)),
  h('td', { class: 'nowrap' }, timeEl(finding.last_seen)),
  h('td', {}, h('span', { class: `finding-status status-${finding.status === 'fixed' ? 'fixed' : 'open'}` }, visibleText(finding.status))));
}

function findingsTable(items, testid = 'findings-table') {
  if (!items.length) return h('p', { class: 'empty', 'data-testid': 'no-findings' }, 'No findings.');
  return table(FINDING_COLUMNS, items.map(findingRow), { class: 'grid findings', 'data-testid': testid });
}

const RUN_COLUMNS = ['Run', 'Probe', 'Status', 'Trigger', 'Created', 'Duration', 'Findings', 'Reason'];

function runRow(run, testid = 'run-row') {
  return h('tr', { 'data-testid': testid, 'data-run-id': run.id, 'data-status': run.status, 'data-probe': run.probe },
    h('td', { class: 'mono' }, h('a', { href: runHref(run.id), title: run.id }, visibleText(String(run.id).slice(0, 8)))),
    h('td', {}, h('a', { href: runsHref(run.probe) }, visibleText(run.probe))),
    h('td', {}, runStatusBadge(run.status)),
    h('td', {}, visibleText(run.trigger)),
    h('td', { class: 'nowrap' }, timeEl(run.created_at)),
    h('td', { class: 'num' }, fmtDuration(run.duration_ms)),
    h('td', { class: 'num' }, run.findings_count ?? '—'),
    h('td', { class: 'reason' }, run.reason ? visibleText(run.reason) : ''));
}

/**
 * A table of runs kept in order (newest created first) and updated from run
 * events without regressing a run's state. `accept(run)` says whether a run
 * belongs here; `insertNew` whether unseen runs are added.
 */
class RunTable {
  constructor({ testid, rowTestid, accept = () => true, insertNew = true, empty = 'No runs.' }) {
    this.rows = new Map();
    this.runs = new Map();
    this.accept = accept;
    this.insertNew = insertNew;
    this.rowTestid = rowTestid;
    this.tbody = h('tbody', {});
    this.empty = h('p', { class: 'empty', 'data-testid': `${testid}-empty` }, empty);
    this.table = h('table', { class: 'grid runs', 'data-testid': testid },
      h('thead', {}, h('tr', {}, RUN_COLUMNS.map((c) => h('th', { scope: 'col' }, c)))), this.tbody);
    this.el = h('div', { class: 'run-table' }, this.table, this.empty);
    this.refreshEmpty();
  }

  set(runs) {
    for (const run of runs) if (this.accept(run)) this.update(run, true);
  }

  update(run, insert = this.insertNew) {
    const known = this.runs.get(run.id);
    if (known && runRank(run.status) < runRank(known.status)) return;
    if (!this.accept(run)) {
      this.remove(run.id);
      return;
    }
    if (!known && !insert) return;
    const row = runRow(run, this.rowTestid);
    if (known) {
      this.rows.get(run.id).replaceWith(row);
    } else {
      // Newest first: before the first row created earlier than this run.
      const created = Date.parse(run.created_at) || 0;
      const before = [...this.tbody.children].find((tr) => {
        const other = this.runs.get(tr.getAttribute('data-run-id'));
        return other && (Date.parse(other.created_at) || 0) < created;
      });
      this.tbody.insertBefore(row, before || null);
    }
    this.rows.set(run.id, row);
    this.runs.set(run.id, run);
    this.refreshEmpty();
  }

  remove(id) {
    this.rows.get(id)?.remove();
    this.rows.delete(id);
    this.runs.delete(id);
    this.refreshEmpty();
  }

  refreshEmpty() {
    const none = this.rows.size === 0;
    this.table.hidden = none;
    this.empty.hidden = !none;
  }
}

/**
 * Run events that come while a view is still loading, replayed once it is
 * built, so a run that ends during the first fetch is not left "running".
 */
function bufferedRuns(ctx) {
  const pending = [];
  let sink = null;
  ctx.onRun((run) => (sink ? sink(run) : pending.push(run)));
  return (listener) => {
    sink = listener;
    for (const run of pending.splice(0)) listener(run);
  };
}

function exportBar() {
  const links = REPORT_FORMATS.map(([format, label]) => {
    const href = `/api/v1/report${query({ format })}`;
    const link = h('a', { href, download: `sonde-report.${format}`, class: 'button', 'data-testid': `export-${format}` }, label);
    on(link, 'click', (event) => {
      if (!session.token) return; // a plain download
      event.preventDefault();
      downloadWithToken(href, format, link);
    });
    return link;
  });
  return h('div', { class: 'exports', role: 'group', 'aria-label': 'Export the latest report' },
    h('span', { class: 'muted' }, 'Export'), links);
}

async function downloadWithToken(href, format, link) {
  link.classList.add('busy');
  try {
    const response = await request(href, { accept: '*/*' });
    const disposition = response.headers.get('Content-Disposition') || '';
    const named = /filename="?([^";]+)"?/i.exec(disposition);
    const filename = (named ? named[1] : `sonde-report.${format}`).replace(/[^A-Za-z0-9._-]/g, '_');
    const url = URL.createObjectURL(await response.blob());
    const anchor = h('a', { href: url, download: filename, hidden: true });
    document.body.append(anchor);
    anchor.click();
    anchor.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (err) {
    link.after(errorBox(err));
  } finally {
    link.classList.remove('busy');
  }
}

function blobToDataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

function trendImage() {
  const src = '/api/v1/trends.svg?days=30';
  const img = h('img', { class: 'trend', alt: 'Open findings per day and severity, last 30 days', 'data-testid': 'trend' });
  const note = h('p', { class: 'muted', hidden: true, 'data-testid': 'trend-error' }, 'The trend plot could not be loaded.');
  on(img, 'error', () => { note.hidden = false; });
  if (!session.token) {
    img.src = src;
  } else {
    // img-src allows 'self' and data: only, and an <img> cannot send the header.
    request(src, { accept: 'image/svg+xml' })
      .then((response) => response.blob())
      .then((blob) => blobToDataUrl(new Blob([blob], { type: 'image/svg+xml' })))
      .then((url) => { img.src = url; })
      .catch(() => { note.hidden = false; });
  }
  return h('figure', { class: 'trend-figure' }, img, note);
}

// ---------------------------------------------------------------------------
// Dashboard

async function dashboardView(ctx) {
  setTitle('Dashboard');
  const replay = bufferedRuns(ctx);
  const summary = await api('/api/v1/summary');
  const scoreCard = h('div', { class: 'card score-card' });
  const countsCard = h('div', { class: 'card counts-card' });
  const probesCard = h('div', { class: 'card probes-card' });
  const namespaces = h('div', {});
  const newest = h('div', {});
  const running = new RunTable({ testid: 'running-runs', rowTestid: 'running-run-row', accept: isActive, empty: 'No run in progress.' });

  const fill = (s) => {
    const cluster = s.score ? s.score.cluster : null;
    const score = typeof cluster === 'number' ? cluster : null;
    scoreCard.replaceChildren(
      h('h2', {}, 'Cluster score'),
      h('div', {
        class: `score ${score === null ? 'score-none' : score >= 90 ? 'score-good' : score >= 70 ? 'score-fair' : 'score-poor'}`,
        'data-testid': 'score',
      }, score === null ? 'no score yet' : fmtNumber(score)),
      h('p', { class: 'muted' }, 'out of 100'));
    const counts = s.counts || {};
    countsCard.replaceChildren(
      h('h2', {}, 'Open findings'),
      h('ul', { class: 'counts', 'data-testid': 'severity-counts' }, SEVERITIES.map((sev) => h('li', { class: `count sev-border-${sev}` },
        h('a', { href: `#/findings${query({ severity: sev })}` },
          h('span', { class: 'count-number', 'data-testid': `count-${sev}` }, fmtNumber(counts[sev] ?? 0)),
          h('span', { class: `sev sev-${sev}` }, sev))))));
    const probes = s.probes || { total: 0, failing: [], stale: [] };
    const probeLinks = (names, testid) => (names && names.length
      ? h('ul', { class: 'inline-list', 'data-testid': testid }, names.map((n) => h('li', {}, h('a', { href: runsHref(n) }, visibleText(n)))))
      : h('span', { class: 'muted', 'data-testid': testid }, 'none'));
    probesCard.replaceChildren(
      h('h2', {}, 'Probes'),
      h('p', {}, h('a', { href: '#/probes' }, `${probes.total ?? 0} probes`)),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Failing'), h('dd', {}, probeLinks(probes.failing, 'failing-probes')),
        h('dt', {}, 'Stale'), h('dd', {}, probeLinks(probes.stale, 'stale-probes'))));
    const nsScores = (s.score && Array.isArray(s.score.namespaces)) ? s.score.namespaces : [];
    namespaces.replaceChildren(...(nsScores.length ? [
      h('h2', {}, 'Scores by namespace'),
      table(['Namespace', 'Score', 'Findings', 'Objects'], nsScores.map((n) => h('tr', { 'data-testid': 'namespace-score' },
        h('td', {}, h('a', { href: `#/findings${query({ namespace: n.namespace })}` }, n.namespace ? visibleText(n.namespace) : '(cluster-scoped)')),
        h('td', { class: 'num' }, fmtNumber(n.score)),
        h('td', { class: 'num' }, n.findings ?? '—'),
        h('td', { class: 'num' }, n.objects ?? '—'))), { class: 'grid compact' }),
    ] : []));
    newest.replaceChildren(findingsTable(Array.isArray(s.newest) ? s.newest : [], 'newest-findings'));
  };

  fill(summary);
  ctx.append(
    h('div', { class: 'title-row' }, h('h1', {}, 'Dashboard'), exportBar()),
    h('div', { class: 'cards' }, scoreCard, countsCard, probesCard),
    h('h2', {}, 'Open findings, last 30 days'),
    trendImage(),
    h('h2', {}, 'Runs in progress'),
    running.el,
    h('div', { class: 'title-row' }, h('h2', {}, 'Newest findings'), h('a', { href: '#/findings' }, 'All findings →')),
    newest,
    namespaces);
  running.set(Array.isArray(summary.running) ? summary.running : []);
  replay((run) => {
    running.update(run);
    if (!isActive(run)) {
      ctx.debounce('summary', 700, () => api('/api/v1/summary').then((s) => ctx.alive && fill(s), () => {}));
    }
  });
}

// ---------------------------------------------------------------------------
// Findings explorer

const FILTER_TEXT_FIELDS = [
  ['namespace', 'Namespace'], ['kind', 'Kind'], ['name', 'Name'],
  ['rule', 'Rule'], ['probe', 'Probe'],
];

function readFilters(params) {
  const severities = (params.get('severity') || '').split(',').filter((s) => SEVERITIES.includes(s));
  const status = FINDING_STATUSES.includes(params.get('status')) ? params.get('status') : 'open';
  return {
    namespace: params.get('namespace') === '-' ? '' : (params.get('namespace') || ''),
    clusterScoped: params.get('namespace') === '-',
    kind: params.get('kind') || '',
    name: params.get('name') || '',
    rule: params.get('rule') || '',
    probe: params.get('probe') || '',
    severities,
    status,
    since: params.get('since') || '',
    q: params.get('q') || '',
  };
}

/** The filters as query parameters, shared by the hash and the API call. */
function filterParams(filters) {
  const params = {};
  if (filters.clusterScoped) params.namespace = '-';
  else if (filters.namespace) params.namespace = filters.namespace;
  for (const key of ['kind', 'name', 'rule', 'probe']) if (filters[key]) params[key] = filters[key];
  if (filters.severities.length) params.severity = filters.severities.join(',');
  if (filters.status !== 'open') params.status = filters.status;
  if (filters.since) params.since = filters.since;
  if (filters.q) params.q = filters.q;
  return params;
}

function goTo(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

function filterForm(filters) {
  const field = (key, label, value, type = 'text') => {
    const input = h('input', { id: `filter-${key}`, name: key, type, 'data-testid': `filter-${key}`, autocomplete: 'off' });
    input.value = value;
    return h('div', { class: 'field' }, h('label', { for: `filter-${key}` }, label), input);
  };
  const form = h('form', { class: 'filters', 'data-testid': 'filter-form', 'aria-label': 'Filter findings' });
  const cluster = h('input', { id: 'filter-cluster-scoped', type: 'checkbox', name: 'cluster', 'data-testid': 'filter-cluster-scoped' });
  cluster.checked = filters.clusterScoped;
  const status = h('select', { id: 'filter-status', name: 'status', 'data-testid': 'filter-status' },
    FINDING_STATUSES.map((s) => h('option', { value: s }, s)));
  status.value = filters.status;
  const severityBoxes = SEVERITIES.map((sev) => {
    const box = h('input', { id: `filter-severity-${sev}`, type: 'checkbox', name: 'severity', value: sev, 'data-testid': `filter-severity-${sev}` });
    box.checked = filters.severities.includes(sev);
    return h('label', { class: `check sev-check-${sev}`, for: `filter-severity-${sev}` }, box, sev);
  });
  form.append(
    h('div', { class: 'field-row' },
      ...FILTER_TEXT_FIELDS.map(([key, label]) => field(key, label, filters[key])),
      h('div', { class: 'field field-check' }, h('label', { class: 'check', for: 'filter-cluster-scoped' }, cluster, 'cluster-scoped only'))),
    h('div', { class: 'field-row' },
      h('fieldset', { class: 'severities' }, h('legend', {}, 'Severity (none: all)'), severityBoxes),
      h('div', { class: 'field' }, h('label', { for: 'filter-status' }, 'Status'), status),
      field('since', 'Since (RFC 3339)', filters.since),
      field('q', 'Message contains', filters.q, 'search'),
      h('div', { class: 'field field-buttons' },
        h('button', { type: 'submit', class: 'primary', 'data-testid': 'apply-filters' }, 'Apply'),
        on(h('button', { type: 'button', 'data-testid': 'clear-filters' }, 'Clear'), 'click', () => goTo('#/findings')))));
  on(form, 'submit', (event) => {
    event.preventDefault();
    const value = (key) => form.querySelector(`#filter-${key}`).value.trim();
    const next = {
      namespace: value('namespace'), clusterScoped: cluster.checked,
      kind: value('kind'), name: value('name'), rule: value('rule'), probe: value('probe'),
      severities: SEVERITIES.filter((sev) => form.querySelector(`#filter-severity-${sev}`).checked),
      status: status.value, since: value('since'), q: value('q'),
    };
    goTo(`#/findings${query(filterParams(next))}`);
  });
  return form;
}

async function findingsView(ctx, params) {
  setTitle('Findings');
  const filters = readFilters(params);
  const cursor = params.get('cursor');
  const results = h('div', { class: 'results' }, h('p', { class: 'loading' }, 'Loading…'));
  ctx.append(
    h('div', { class: 'title-row' }, h('h1', {}, 'Findings'), exportBar()),
    filterForm(filters),
    results);
  const apiParams = { ...filterParams(filters), status: filters.status, limit: PAGE_SIZE, cursor };
  const page = await api(`/api/v1/findings${query(apiParams)}`);
  const items = Array.isArray(page.items) ? page.items : [];
  const hashParams = filterParams(filters);
  const pager = h('div', { class: 'pager' },
    cursor ? h('a', { class: 'button', href: `#/findings${query(hashParams)}`, 'data-testid': 'first-page' }, '← First page') : null,
    page.next ? on(h('button', { type: 'button', 'data-testid': 'next-page' }, 'Next page →'), 'click',
      () => goTo(`#/findings${query({ ...hashParams, cursor: page.next })}`)) : null);
  results.replaceChildren(
    h('p', { class: 'total' },
      h('span', { 'data-testid': 'findings-total', 'data-total': page.total ?? '' }, fmtNumber(page.total ?? items.length)),
      ` finding${page.total === 1 ? '' : 's'}`,
      items.length ? `, showing ${items.length}${cursor ? ' (a later page)' : ''}` : ''),
    findingsTable(items),
    pager);
}

// ---------------------------------------------------------------------------
// Resource and rule pages

/** Every page of a findings query, up to a bound. */
async function allFindings(params, maxPages = 20) {
  const items = [];
  let cursor = null;
  for (let i = 0; i < maxPages; i += 1) {
    const page = await api(`/api/v1/findings${query({ ...params, limit: 200, cursor })}`);
    items.push(...(page.items || []));
    cursor = page.next;
    if (!cursor) return { items, complete: true };
  }
  return { items, complete: false };
}

async function resourceView(ctx, params) {
  const resource = { namespace: params.get('namespace') || '', kind: params.get('kind') || '', name: params.get('name') || '' };
  setTitle(resourceLabel(resource) || 'Resource');
  ctx.append(
    h('h1', {}, h('span', { class: 'muted' }, visibleText(resource.kind || 'Object')), ' ', visibleText(resource.name || '(no name)')),
    h('p', { class: 'muted', 'data-testid': 'resource-namespace' }, resource.namespace ? `namespace ${visibleText(resource.namespace)}` : 'cluster-scoped'));
  const { items, complete } = await allFindings({ ...resource, namespace: resource.namespace || '-', status: 'all' });
  const mine = items.filter((f) => f.resource
    && (f.resource.namespace ?? '') === resource.namespace
    && (f.resource.kind ?? '') === resource.kind
    && (f.resource.name ?? '') === resource.name);
  const open = mine.filter((f) => f.status !== 'fixed');
  const fixed = mine.filter((f) => f.status === 'fixed');
  ctx.append(
    h('h2', {}, `Open (${open.length})`), findingsTable(open, 'open-findings'),
    h('h2', {}, `Fixed (${fixed.length})`), findingsTable(fixed, 'fixed-findings'),
    complete ? null : h('p', { class: 'muted' }, 'Only the first pages are shown.'));
}

async function ruleView(ctx, params, probe, ruleId) {
  setTitle(`${ruleId} (${probe})`);
  const facts = h('div', {});
  const findings = h('div', {});
  ctx.append(h('h1', {}, visibleText(ruleId), ' ', h('span', { class: 'muted' }, visibleText(probe))), facts, h('h2', {}, 'Open findings'), findings);
  const [rule, first] = await Promise.allSettled([
    api(`/api/v1/rules/${seg(probe)}/${seg(ruleId)}`),
    api(`/api/v1/findings${query({ probe, rule: ruleId, status: 'open', limit: PAGE_SIZE })}`),
  ]);
  if (rule.status === 'fulfilled') {
    const r = rule.value;
    facts.replaceChildren(
      h('p', { class: 'rule-title', 'data-testid': 'rule-title' }, visibleText(r.title)),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Severity'), h('dd', {}, sevBadge(r.severity)),
        h('dt', {}, 'Category'), h('dd', { 'data-testid': 'rule-category' }, visibleText(r.category)),
        h('dt', {}, 'Probe'), h('dd', {}, h('a', { href: runsHref(r.probe ?? probe) }, visibleText(r.probe ?? probe))),
        h('dt', {}, 'Open findings'), h('dd', { 'data-testid': 'rule-open-findings' }, r.open_findings ?? '—')),
      h('h2', {}, 'Description'), h('p', { class: 'prose', 'data-testid': 'rule-description' }, visibleText(r.description)),
      h('h2', {}, 'Remedy'), h('p', { class: 'prose', 'data-testid': 'rule-remedy' }, visibleText(r.remedy)));
  } else {
    facts.replaceChildren(errorBox(rule.reason));
  }
  if (first.status === 'rejected') throw first.reason;
  let page = first.value;
  const body = h('div', {}, findingsTable(page.items || []));
  const more = h('div', { class: 'pager' });
  const showMore = () => {
    more.replaceChildren(page.next ? on(h('button', { type: 'button', 'data-testid': 'next-page' }, 'Next page →'), 'click', async () => {
      page = await api(`/api/v1/findings${query({ probe, rule: ruleId, status: 'open', limit: PAGE_SIZE, cursor: page.next })}`);
      body.replaceChildren(findingsTable(page.items || []));
      showMore();
    }) : null);
  };
  showMore();
  findings.replaceChildren(h('p', { class: 'total' }, h('span', { 'data-testid': 'findings-total' }, fmtNumber(page.total ?? 0)), ' open'), body, more);
}

// ---------------------------------------------------------------------------
// Runs

async function runsView(ctx, params) {
  const probe = params.get('probe') || '';
  const cursor = params.get('cursor');
  setTitle(probe ? `Runs of ${probe}` : 'Runs');
  const replay = bufferedRuns(ctx);
  const select = h('select', { id: 'runs-probe', 'data-testid': 'runs-probe' }, h('option', { value: '' }, 'all probes'));
  const form = h('form', { class: 'filters inline', 'aria-label': 'Filter runs' },
    h('label', { for: 'runs-probe' }, 'Probe'), select,
    h('button', { type: 'submit', 'data-testid': 'runs-apply' }, 'Show'));
  on(form, 'submit', (event) => {
    event.preventDefault();
    goTo(`#/runs${query({ probe: select.value || null })}`);
  });
  on(select, 'change', () => form.requestSubmit());
  const accept = (run) => !probe || run.probe === probe;
  const live = new RunTable({ testid: 'live-runs', rowTestid: 'live-run-row', accept: (run) => accept(run) && isActive(run), empty: 'No run in progress.' });
  const history = new RunTable({ testid: 'runs-table', rowTestid: 'run-row', accept, insertNew: !cursor });
  const pager = h('div', { class: 'pager' });
  ctx.append(
    h('div', { class: 'title-row' }, h('h1', {}, probe ? `Runs of ${visibleText(probe)}` : 'Runs'), form),
    h('h2', {}, 'In progress ', h('span', { class: 'muted small' }, '(live)')), live.el,
    h('h2', {}, 'History'), history.el, pager);

  const [page, probes] = await Promise.all([
    api(`/api/v1/runs${query({ probe: probe || null, limit: PAGE_SIZE, cursor })}`),
    api('/api/v1/probes').catch(() => []),
  ]);
  const names = new Set((Array.isArray(probes) ? probes : []).map((p) => p.name));
  if (probe) names.add(probe);
  for (const name of [...names].sort()) select.append(h('option', { value: name }, visibleText(name)));
  select.value = probe;
  const items = Array.isArray(page.items) ? page.items : [];
  history.set(items);
  live.set(items.filter(isActive));
  pager.replaceChildren(
    cursor ? h('a', { class: 'button', href: runsHref(probe || null), 'data-testid': 'first-page' }, '← Newest') : null,
    page.next ? on(h('button', { type: 'button', 'data-testid': 'next-page' }, 'Next page →'), 'click',
      () => goTo(`#/runs${query({ probe: probe || null, cursor: page.next })}`)) : null);
  replay((run) => {
    live.update(run, true);
    history.update(run);
  });
}

function logText(log) {
  return `${String(log.level ?? '').padEnd(5)} ${log.source ?? ''}: ${visibleText(log.message)}`;
}

async function runView(ctx, params, id) {
  setTitle(`Run ${String(id).slice(0, 8)}`);
  const body = h('div', {});
  ctx.append(h('h1', {}, 'Run ', h('span', { class: 'mono' }, visibleText(id))), body);
  const show = (run) => {
    const logs = Array.isArray(run.logs) ? run.logs : [];
    const denials = Array.isArray(run.denials) ? run.denials : [];
    const pre = h('pre', { class: 'logs', 'data-testid': 'run-logs' });
    for (const log of logs) {
      const level = ['error', 'warn', 'info', 'debug'].includes(log.level) ? log.level : 'info';
      pre.append(h('span', { class: `log log-${level}` }, logText(log)), '\n');
    }
    if (!logs.length) pre.textContent = '(no log lines)';
    body.replaceChildren(
      h('dl', { class: 'facts' },
        h('dt', {}, 'Probe'), h('dd', {}, h('a', { href: runsHref(run.probe) }, visibleText(run.probe))),
        h('dt', {}, 'Status'), h('dd', { 'data-testid': 'run-status', 'data-status': run.status }, runStatusBadge(run.status)),
        h('dt', {}, 'Reason'), h('dd', { 'data-testid': 'run-reason' }, run.reason ? visibleText(run.reason) : '—'),
        h('dt', {}, 'Trigger'), h('dd', {}, visibleText(run.trigger)),
        h('dt', {}, 'Created'), h('dd', {}, timeEl(run.created_at)),
        h('dt', {}, 'Started'), h('dd', {}, timeEl(run.started_at)),
        h('dt', {}, 'Finished'), h('dd', {}, timeEl(run.finished_at)),
        h('dt', {}, 'Duration'), h('dd', {}, fmtDuration(run.duration_ms)),
        h('dt', {}, 'Findings'), h('dd', {}, run.findings_count ?? '—',
          ' ', h('a', { href: `#/findings${query({ probe: run.probe })}` }, 'open findings of this probe'))),
      h('h2', {}, `Logs (${logs.length})`), pre,
      h('h2', {}, `Denials (${denials.length})`),
      denials.length
        ? table(['Capability', 'Detail'], denials.map((d) => h('tr', { 'data-testid': 'denial-row' },
          h('td', { class: 'mono' }, visibleText(d.capability)), h('td', {}, visibleText(d.detail)))), { class: 'grid compact', 'data-testid': 'run-denials' })
        : h('p', { class: 'muted', 'data-testid': 'run-denials' }, 'No capability was denied.'));
  };
  let run = await api(`/api/v1/runs/${seg(id)}`);
  show(run);
  ctx.onRun((event) => {
    if (event.id !== run.id || runRank(event.status) < runRank(run.status)) return;
    run = { ...run, ...event };
    show(run);
    // Logs and denials come with the full run only.
    ctx.debounce('run', 300, () => api(`/api/v1/runs/${seg(id)}`).then((full) => {
      if (ctx.alive && runRank(full.status) >= runRank(run.status)) { run = full; show(run); }
    }, () => {}));
  });
}

// ---------------------------------------------------------------------------
// Probes

async function probesView(ctx) {
  setTitle('Probes');
  const message = h('p', { class: 'action-message', role: 'status', 'aria-live': 'polite', 'data-testid': 'probe-message', hidden: true });
  const tbody = h('tbody', {});
  const rows = new Map();
  const say = (parts, isError) => {
    message.hidden = false;
    message.className = `action-message ${isError ? 'error' : 'ok'}`;
    message.replaceChildren(...parts);
  };

  const act = async (button, probe, action) => {
    button.disabled = true;
    try {
      const answer = await api(`/api/v1/probes/${seg(probe.name)}/${action}`, { method: 'POST' });
      if (action === 'run') {
        const run = answer && answer.run;
        say([`${probe.name}: `, run ? h('a', { href: runHref(run.id), 'data-testid': 'queued-run' }, `run ${String(run.id).slice(0, 8)}`) : 'a run', ` ${run ? visibleText(run.status) : 'queued'}.`], false);
      } else {
        say([`${probe.name}: ${action === 'suspend' ? 'suspended' : 'resumed'}.`], false);
        if (answer && answer.name) put(answer);
      }
    } catch (err) {
      say([visibleText(`${probe.name}: ${err.status === 403 ? 'not allowed: ' : ''}${err.message}`)], true);
    } finally {
      button.disabled = false;
    }
  };

  const row = (p) => {
    const last = p.last_run;
    const state = [
      h('span', { class: `pill ${p.enabled ? 'pill-on' : 'pill-off'}` }, p.enabled ? 'enabled' : 'disabled'),
      p.suspended ? h('span', { class: 'pill pill-warn' }, 'suspended') : null,
      p.stale ? h('span', { class: 'pill pill-bad' }, 'stale') : null,
      p.running ? h('span', { class: 'pill pill-run' }, 'running') : null,
    ];
    const runNow = on(h('button', { type: 'button', 'data-testid': `run-now-${p.name}` }, 'Run now'), 'click', (e) => act(e.currentTarget, p, 'run'));
    const toggle = p.suspended
      ? on(h('button', { type: 'button', 'data-testid': `resume-${p.name}` }, 'Resume'), 'click', (e) => act(e.currentTarget, p, 'resume'))
      : on(h('button', { type: 'button', 'data-testid': `suspend-${p.name}` }, 'Suspend'), 'click', (e) => act(e.currentTarget, p, 'suspend'));
    return h('tr', { 'data-testid': 'probe-row', 'data-probe': p.name },
      h('td', {}, h('a', { href: runsHref(p.name), title: p.description ? visibleText(p.description) : null }, visibleText(p.name)),
        h('div', { class: 'muted small' }, visibleText(p.origin))),
      h('td', { class: 'mono' }, visibleText(p.version)),
      h('td', {}, h('span', { class: 'mono' }, visibleText(p.schedule ?? '—')), ' ', h('span', { class: 'muted' }, visibleText(p.timezone ?? ''))),
      h('td', { class: 'nowrap' }, timeEl(p.next_run)),
      h('td', { class: 'nowrap' }, last ? [runStatusBadge(last.status), ' ', h('a', { href: runHref(last.id) }, fmtTime(last.created_at))] : h('span', { class: 'muted' }, 'never')),
      h('td', { class: 'nowrap' }, timeEl(p.last_success)),
      h('td', {}, state),
      h('td', { class: 'num' }, typeof p.rules === 'number' ? p.rules : Array.isArray(p.rules) ? p.rules.length : '—'),
      h('td', { class: 'actions' }, runNow, toggle));
  };

  const put = (p) => {
    const fresh = row(p);
    const old = rows.get(p.name);
    if (old) old.replaceWith(fresh);
    else tbody.append(fresh);
    rows.set(p.name, fresh);
  };

  ctx.append(h('h1', {}, 'Probes'), message,
    h('table', { class: 'grid probes', 'data-testid': 'probes-table' },
      h('thead', {}, h('tr', {}, ['Probe', 'Version', 'Schedule', 'Next run', 'Last run', 'Last success', 'State', 'Rules', ''].map((c) => h('th', { scope: 'col' }, c)))),
      tbody));
  const probes = await api('/api/v1/probes');
  for (const p of probes) put(p);
  ctx.onRun(() => ctx.debounce('probes', 500, () => api('/api/v1/probes').then((list) => {
    if (ctx.alive) for (const p of list) put(p);
  }, () => {})));
  ctx.append(await collectorsSection());
}

// ---------------------------------------------------------------------------
// History: a collector's rows (GET /api/v1/collectors/{name}/rows): the
// cluster's events kept past their hour, the API server's audit records,
// the node collectors' events.

const HISTORY_WINDOWS = [['60', 'last hour'], ['1440', 'last day'], ['10080', 'last 7 days'], ['43200', 'last 30 days']];

// The columns shown first for a collector (its other fields are in each row's title).
const HISTORY_COLUMNS = {
  'kube-events': ['type', 'kind', 'namespace', 'object_kind', 'object_name', 'count', 'node', 'message'],
  'kube-audit': ['user', 'kind', 'resource', 'subresource', 'namespace', 'name', 'code', 'decision', 'source_ip'],
  'kernel-log': ['node', 'kind', 'condition', 'pid', 'comm', 'message'],
};

/** `field=value` pairs written in the filter box, space-separated; a bad one is named. */
function parseWhere(text) {
  const pairs = [];
  for (const part of String(text || '').split(/\s+/).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new Error(`"${part}" is not field=value`);
    pairs.push([part.slice(0, eq), part.slice(eq + 1)]);
  }
  return pairs;
}

/** The window picker of the history and traffic pages, set to `minutes` (or `fallback`). */
function windowSelect(id, minutes, fallback) {
  const span = h('select', { id, 'data-testid': id },
    HISTORY_WINDOWS.map(([value, label]) => h('option', { value }, label)));
  span.value = HISTORY_WINDOWS.some(([v]) => v === minutes) ? minutes : fallback;
  return span;
}

/** A `field=value …` filter box holding `where`. */
function whereInput(id, where, size, example) {
  const filter = h('input', { id, type: 'search', 'data-testid': id, size, placeholder: `field=value … (e.g. ${example})` });
  filter.value = where;
  return filter;
}

/** The pairs of a `field=value …` filter, or null after saying on the page what is wrong with it. */
function whereOrSay(ctx, where) {
  try {
    return parseWhere(where);
  } catch (err) {
    ctx.append(h('p', { class: 'error', role: 'alert', 'data-testid': 'error' }, visibleText(err.message)));
    return null;
  }
}

async function historyView(ctx, params) {
  const collector = params.get('collector') || 'kube-events';
  const minutes = params.get('minutes') || '1440';
  const since = params.get('since');
  const where = params.get('where') || '';
  setTitle(`History: ${collector}`);
  const collectors = await api('/api/v1/collectors').catch(() => []);
  const names = (Array.isArray(collectors) ? collectors : []).map((c) => c.name);
  if (!names.includes(collector)) names.push(collector);
  const pick = h('select', { id: 'history-collector', 'data-testid': 'history-collector' },
    names.map((n) => h('option', { value: n }, visibleText(n))));
  pick.value = collector;
  const span = windowSelect('history-window', minutes, '1440');
  const filter = whereInput('history-where', where, 40, 'type=Warning namespace=shop');
  const form = h('form', { class: 'filters inline', 'aria-label': 'Filter history' },
    h('label', { for: 'history-collector' }, 'Collector'), pick,
    h('label', { for: 'history-window' }, 'Window'), span,
    h('label', { for: 'history-where' }, 'Where'), filter,
    h('button', { type: 'submit', 'data-testid': 'history-apply' }, 'Show'));
  on(form, 'submit', (event) => {
    event.preventDefault();
    goTo(`#/history${query({ collector: pick.value, minutes: span.value, where: filter.value.trim() || null })}`);
  });
  on(pick, 'change', () => form.requestSubmit());
  on(span, 'change', () => form.requestSubmit());
  const spec = (Array.isArray(collectors) ? collectors : []).find((c) => c.name === collector);
  ctx.append(
    h('div', { class: 'title-row' }, h('h1', {}, 'History'), form),
    spec ? h('p', { class: 'muted' }, visibleText(spec.description)) : null);

  const pairs = whereOrSay(ctx, where);
  if (!pairs) return;
  const search = new URLSearchParams();
  if (since) search.set('since', since);
  else search.set('minutes', span.value);
  for (const [k, v] of pairs) search.append(k, v);
  search.set('limit', '200');
  const page = await api(`/api/v1/collectors/${seg(collector)}/rows?${search}`);
  const columns = Array.isArray(page.columns) ? page.columns : [];
  const index = new Map(columns.map((c, i) => [c, i]));
  const shown = (HISTORY_COLUMNS[collector] || columns.filter((c) => c !== 'ts')).filter((c) => index.has(c));
  const rows = (Array.isArray(page.rows) ? page.rows : []).map((r) => {
    const value = (c) => r[index.get(c)];
    const all = columns.filter((c) => value(c) !== null && value(c) !== undefined).map((c) => `${c}=${value(c)}`).join('\n');
    return h('tr', { 'data-testid': 'history-row', title: visibleText(all) },
      h('td', { class: 'nowrap' }, timeEl(new Date(Number(value('ts'))).toISOString())),
      shown.map((c) => h('td', { class: c === 'message' ? 'message' : null, 'data-field': c },
        value(c) === null || value(c) === undefined ? '' : visibleText(value(c)))));
  });
  ctx.append(
    rows.length
      ? table(['Time', ...shown], rows, { class: 'grid history', 'data-testid': 'history-table' })
      : h('p', { class: 'empty', 'data-testid': 'no-history' }, 'Nothing in this window.'),
    page.truncated ? h('p', { class: 'muted', 'data-testid': 'history-truncated' }, 'More rows matched: the newest 200 are shown. Narrow the window or the filter.') : null);
}

// ---------------------------------------------------------------------------
// Traffic: HTTP R.E.D. per serving pod or route (GET /api/v1/traffic)

const SVG_NS = 'http://www.w3.org/2000/svg';

/** An SVG element with numeric or plain attributes (no handlers, no styles). */
function svgEl(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  appendChildren(el, children);
  return el;
}

/** Requests (line) and 5xx (bars) across the window, scaled to the busiest point. */
function sparkline(requests, errors) {
  const width = 120;
  const height = 24;
  const n = Math.max(requests.length, 1);
  const top = Math.max(1, ...requests.map(Number));
  const x = (i) => (n === 1 ? width / 2 : (i * width) / (n - 1));
  const y = (v) => height - 1 - (Number(v) / top) * (height - 2);
  const points = requests.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
  const bars = errors.map((v, i) => (Number(v) > 0
    ? svgEl('rect', { class: 'spark-errors', x: Math.max(0, x(i) - 1).toFixed(1), y: y(v).toFixed(1), width: 2, height: (height - 1 - y(v)).toFixed(1) })
    : null));
  return svgEl('svg', { class: 'sparkline', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': 'requests and server errors across the window' },
    svgEl('polyline', { class: 'spark-requests', points }), bars);
}

function fmtMs(value) {
  if (value === null || value === undefined) return '—';
  const n = Number(value);
  if (!Number.isFinite(n)) return '—';
  return `${n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : Math.round(n)} ms`;
}

function fmtRatio(value) {
  const n = Number(value) * 100;
  if (!Number.isFinite(n) || n === 0) return '0 %';
  return `${n < 0.1 ? '<0.1' : n < 10 ? n.toFixed(1) : Math.round(n)} %`;
}

async function trafficView(ctx, params) {
  const by = params.get('by') === 'route' ? 'route' : 'pod';
  const minutes = params.get('minutes') || '60';
  const where = params.get('where') || '';
  setTitle('Traffic');
  const span = windowSelect('traffic-window', minutes, '60');
  const per = h('select', { id: 'traffic-by', 'data-testid': 'traffic-by' },
    h('option', { value: 'pod' }, 'pod'), h('option', { value: 'route' }, 'pod and route'));
  per.value = by;
  const filter = whereInput('traffic-where', where, 32, 'namespace=shop');
  const form = h('form', { class: 'filters inline', 'aria-label': 'Filter traffic' },
    h('label', { for: 'traffic-window' }, 'Window'), span,
    h('label', { for: 'traffic-by' }, 'Per'), per,
    h('label', { for: 'traffic-where' }, 'Where'), filter,
    h('button', { type: 'submit', 'data-testid': 'traffic-apply' }, 'Show'));
  on(form, 'submit', (event) => {
    event.preventDefault();
    goTo(`#/traffic${query({ minutes: span.value, by: per.value, where: filter.value.trim() || null })}`);
  });
  on(span, 'change', () => form.requestSubmit());
  on(per, 'change', () => form.requestSubmit());
  ctx.append(
    h('div', { class: 'title-row' }, h('h1', {}, 'Traffic'), form),
    h('p', { class: 'muted' }, 'HTTP/1.x requests answered by each server, counted in the kernel by the node agents\' http collector: rate, server errors (5xx) and duration.'));

  const pairs = whereOrSay(ctx, where);
  if (!pairs) return;
  const search = new URLSearchParams({ minutes: span.value, by });
  for (const [k, v] of pairs) search.append(k, v);
  const page = await api(`/api/v1/traffic?${search}`);
  const services = Array.isArray(page.services) ? page.services : [];
  const stepMinutes = Math.round(Number(page.step_ms) / 60000) || 1;
  const step = stepMinutes % 60 === 0 ? `${stepMinutes / 60} h` : `${stepMinutes} min`;
  const rows = services.map((s) => {
    const name = s.pod ? `${s.namespace}/${s.pod}` : s.server;
    const bad = Number(s.error_ratio) >= 0.01;
    return h('tr', { 'data-testid': 'traffic-row', title: visibleText(`node ${s.node}\nserver ${s.server}`) },
      h('td', { 'data-field': 'service' }, visibleText(name)),
      by === 'route' ? h('td', { 'data-field': 'method' }, visibleText(s.method)) : null,
      by === 'route' ? h('td', { class: 'message', 'data-field': 'route' }, visibleText(s.route)) : null,
      h('td', { class: 'num', 'data-field': 'requests' }, fmtNumber(s.requests)),
      h('td', { class: 'num', 'data-field': 'per_second' }, Number(s.per_second).toFixed(2)),
      h('td', { class: `num${bad ? ' bad' : ''}`, 'data-field': 'errors', title: `${s.errors} answers 500-599` }, fmtRatio(s.error_ratio)),
      h('td', { class: 'num', 'data-field': 'client_errors' }, fmtNumber(s.client_errors)),
      h('td', { class: 'num', 'data-field': 'p50' }, fmtMs(s.p50_ms)),
      h('td', { class: 'num', 'data-field': 'p99' }, fmtMs(s.p99_ms)),
      h('td', { class: 'num', 'data-field': 'max' }, fmtMs(s.max_ms)),
      h('td', { 'data-field': 'trend' }, sparkline(s.series_requests || [], s.series_errors || [])));
  });
  const columns = ['Server', ...(by === 'route' ? ['Method', 'Route'] : []), 'Requests', 'Per second', '5xx', '4xx', 'p50', 'p99', 'Max', `Trend (${step} a point)`];
  ctx.append(
    rows.length
      ? table(columns, rows, { class: 'grid traffic', 'data-testid': 'traffic-table' })
      : h('p', { class: 'empty', 'data-testid': 'no-traffic' }, 'No HTTP traffic in this window. The http collector runs in `sonde agent` on each node (as root).'),
    page.complete_since
      ? h('p', { class: 'muted', 'data-testid': 'traffic-partial' }, 'More minutes than one read takes: the figures cover from ', timeEl(new Date(Number(page.complete_since)).toISOString()), ' on. Narrow the window or the filter.')
      : page.truncated ? h('p', { class: 'muted', 'data-testid': 'traffic-truncated' }, 'More servers than one page holds: narrow the filter.') : null);
}

// The node collectors and their state on each node (GET /api/v1/collectors).
async function collectorsSection() {
  const section = h('section', { 'data-testid': 'collectors' }, h('h2', {}, 'Node collectors'));
  let list;
  try {
    list = await api('/api/v1/collectors');
  } catch (err) {
    section.append(errorBox(err));
    return section;
  }
  const rows = [];
  for (const c of list) {
    const nodes = c.nodes.length ? c.nodes : [null];
    for (const n of nodes) {
      // The node collectors come from agents; the API server's audit
      // records from its webhook; the cluster's events from the daemon.
      const idle = { 'kube-audit': 'no records yet', 'kube-events': 'not read yet' }[c.name] || 'no agent';
      const state = n === null
        ? h('span', { class: 'pill pill-off' }, idle)
        : h('span', { class: `pill ${n.available ? 'pill-on' : 'pill-bad'}` }, n.available ? 'running' : 'unavailable');
      rows.push(h('tr', { 'data-testid': 'collector-row', 'data-collector': c.name },
        h('td', { title: visibleText(c.description) }, visibleText(c.name)),
        h('td', {}, n ? visibleText(n.node) : '—'),
        h('td', {}, state),
        h('td', { class: 'num' }, n ? fmtNumber(n.events) : '—'),
        h('td', { class: 'num' }, n ? fmtNumber(n.dropped) : '—'),
        h('td', { class: 'nowrap' }, n ? timeEl(n.updated_at) : '—'),
        h('td', { class: 'muted' }, n && n.reason ? visibleText(n.reason) : '')));
    }
  }
  section.append(h('table', { class: 'grid collectors', 'data-testid': 'collectors-table' },
    h('thead', {}, h('tr', {}, ['Collector', 'Node', 'State', 'Records', 'Lost', 'Updated', 'Why not'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, ...rows)));
  return section;
}

// ---------------------------------------------------------------------------
// Start

function boot() {
  try {
    session.token = sessionStorage.getItem(TOKEN_KEY) || '';
  } catch {
    session.token = '';
  }
  window.addEventListener('hashchange', render);
  loadWhoami();
  events.start();
  render();
}

if (typeof document !== 'undefined') {
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot, { once: true });
  else boot();
}
