// The topology app's web UI: a view selector with counts and filters, the
// chosen view as a live graph (or a table), a details panel with controls,
// logs and a terminal, search, saved filters, bulk controls and login.
// Everything comes from the app's API; the URL holds the whole picture.

import { api, ApiError, Diff, hasToken, NodeJson, setToken, ViewInfo, Whoami } from './api';
import { DetailsPanel, DESTRUCTIVE, runControl } from './details';
import { GraphView } from './graph';
import type { FromWorker, ToWorker } from './layout.worker';
import { ConnState, Live, liveStats } from './live';
import { filterQuery, readUrl, UiState, writeUrl } from './state';
import { formatBytes, TableView } from './table';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

let state: UiState = readUrl();
let me: Whoami | null = null;
let views: ViewInfo[] = [];
const model = new Map<string, NodeJson>();
let paused = false;
let queued: Diff[] = [];
let received = false;
let searchSeq = 0;
const perf = { lastApplyMs: 0, applies: 0, resetAt: 0, firstDataAt: 0 };

const worker = new Worker('/ui/layout.js', { type: 'module' });
const graph = new GraphView($<HTMLCanvasElement>('graph'), {
  select: (id, shift) => select(id, shift),
  hover: (id, x, y) => tooltip(id, x, y),
});
graph.nodes = model;
const table = new TableView($('table'), {
  select: (id) => select(id, false),
  toggle: (id, on) => {
    if (on) graph.multi.add(id);
    else graph.multi.delete(id);
    bulkBar();
  },
});
table.nodes = model;
const details = new DetailsPanel($('details'), {
  canControl: (c) => canControl(c),
  open: (view, id) => {
    state.view = view;
    state.node = id;
    apply(true);
  },
  close: () => select(null, false),
  labelOf: (id) => model.get(id)?.label ?? id,
});
const live = new Live(onDiff, onConn);

worker.onmessage = (ev: MessageEvent<FromWorker>) => {
  graph.layoutRunning = !ev.data.settled;
  graph.setPositions(ev.data.ids, ev.data.xy);
  document.body.dataset.layout = ev.data.settled ? 'settled' : 'running';
};
function toWorker(m: ToWorker): void {
  worker.postMessage(m);
}

// For the browser tests and the benchmark: what the page holds and did.
(window as unknown as { __orch: unknown }).__orch = {
  model,
  graph: graph.stats,
  perf,
  live: liveStats,
  mode: () => effectiveMode(),
  screenOf: (id: string) => graph.screenOf(id),
  fitNow: () => graph.fit(),
  positions: () => graph.positions(),
  panBy: (dx: number, dy: number) => graph.panBy(dx, dy),
  zoomBy: (f: number) => graph.zoomBy(f),
  state: () => ({ ...state }),
};

function canControl(control: string): boolean {
  if (!me || me.read_only || !(me.role === 'operator' || me.role === 'admin')) return false;
  return !me.allowed_controls || me.allowed_controls.includes(control);
}

function effectiveMode(): 'graph' | 'table' {
  if (state.mode !== 'auto') return state.mode;
  return Math.max(model.size, expectedTotal) > state.threshold ? 'table' : 'graph';
}

// ------------------------------------------------------------------ boot

let booted = false;

async function boot(): Promise<void> {
  try {
    me = await api<Whoami>('/api/whoami');
  } catch (e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
      showLogin(hasToken() ? (e.status === 401 ? 'That token is not known.' : e.message) : '');
      return;
    }
    banner('Disconnected from the app server, retrying…');
    window.setTimeout(() => void boot(), 2000);
    return;
  }
  banner(null);
  if (me.token_required) {
    showLogin('');
    return;
  }
  if (me.role === 'probe') {
    showLogin('A probe token cannot read the views; sign in with a viewer, operator or admin token.');
    return;
  }
  $('login').hidden = true;
  $('who').textContent = me.open ? '' : `${me.name} (${me.role})`;
  if (!me.open) {
    const out = document.createElement('button');
    out.textContent = 'Sign out';
    out.className = 'link';
    out.addEventListener('click', () => {
      setToken('');
      location.reload();
    });
    $('who').append(' ', out);
  }
  document.body.dataset.role = me.role ?? '';
  $('save-filter').hidden = !(me.role === 'operator' || me.role === 'admin');
  table.checkable = canControl('docker_stop_container');
  if (booted) return;
  booted = true;
  bindControls();
  // The view's socket opens first; the counts and filters load meanwhile.
  apply(false);
  await Promise.all([refreshViews(), loadFilters()]);
  window.setInterval(() => void refreshViews(), 10_000);
}

function showLogin(error: string): void {
  $('login').hidden = false;
  $('login-error').textContent = error;
  $<HTMLInputElement>('token').focus();
}

$('login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  setToken($<HTMLInputElement>('token').value.trim());
  void boot();
});

function banner(text: string | null): void {
  const b = $('banner');
  b.hidden = text === null;
  b.textContent = text ?? '';
}

// ------------------------------------------------------------------ views and filters

async function refreshViews(): Promise<void> {
  try {
    views = await api<ViewInfo[]>('/api/topology');
  } catch (e) {
    if (e instanceof ApiError && e.status === 0) banner('Disconnected from the app server, retrying…');
    return;
  }
  const nav = $('views');
  nav.replaceChildren(
    ...views.map((v) => {
      const a = document.createElement('a');
      a.href = `?view=${v.id}`;
      a.dataset.view = v.id;
      a.className = v.id === state.view ? 'active' : '';
      a.innerHTML = `<span></span> <b></b>`;
      (a.firstChild as HTMLElement).textContent = v.name;
      (a.lastChild as HTMLElement).textContent = String(v.stats.node_count);
      a.addEventListener('click', (e) => {
        e.preventDefault();
        if (state.view === v.id) return;
        state.view = v.id;
        state.node = '';
        apply(true);
      });
      return a;
    }),
  );
  emptyState();
}

async function loadFilters(): Promise<void> {
  try {
    const { filters } = await api<{ filters: { id: string; name: string; query: string; view?: string }[] }>('/api/filters');
    const sel = $<HTMLSelectElement>('saved');
    sel.replaceChildren(new Option('saved filters…', ''), ...filters.map((f) => new Option(`${f.name}: ${f.query}`, f.id)));
    sel.value = state.filter;
  } catch {
    // Shown by the banner when the app is gone.
  }
}

function bindControls(): void {
  const bindSelect = (id: string, key: 'system' | 'stopped' | 'unconnected' | 'pseudo') => {
    const s = $<HTMLSelectElement>(id);
    s.onchange = () => {
      state[key] = s.value;
      apply(true);
    };
  };
  bindSelect('f-system', 'system');
  bindSelect('f-stopped', 'stopped');
  bindSelect('f-unconnected', 'unconnected');
  bindSelect('f-pseudo', 'pseudo');
  $<HTMLSelectElement>('mode').onchange = (e) => {
    state.mode = (e.target as HTMLSelectElement).value as UiState['mode'];
    writeUrl(state);
    showMode();
  };
  $<HTMLSelectElement>('metric').onchange = (e) => {
    state.metric = (e.target as HTMLSelectElement).value as UiState['metric'];
    graph.metric = state.metric;
    graph.dataChanged();
    writeUrl(state);
  };
  $<HTMLInputElement>('threshold').onchange = (e) => {
    const n = Math.floor(Number((e.target as HTMLInputElement).value));
    if (n >= 1) state.threshold = n;
    writeUrl(state);
    showMode();
  };
  $<HTMLSelectElement>('saved').onchange = (e) => {
    state.filter = (e.target as HTMLSelectElement).value;
    apply(true);
  };
  $('fit').onclick = () => graph.fit();
  $('pause').onclick = () => setPaused(!paused);
  $('save-filter').onclick = async () => {
    const query = $<HTMLInputElement>('q').value.trim() || state.q;
    if (!query) {
      searchError('Type a query to save first.');
      return;
    }
    const name = window.prompt('Name of the filter', query);
    if (!name) return;
    try {
      const f = await api<{ id: string }>('/api/filters', { method: 'POST', body: JSON.stringify({ name, query, view: state.view }) });
      state.filter = f.id;
      state.q = '';
      $<HTMLInputElement>('q').value = '';
      await loadFilters();
      apply(true);
    } catch (err) {
      searchError((err as Error).message);
    }
  };
  const q = $<HTMLInputElement>('q');
  let debounce: number | undefined;
  q.oninput = () => {
    window.clearTimeout(debounce);
    debounce = window.setTimeout(() => void highlight(q.value.trim()), 250);
  };
  $('search').onsubmit = (e) => {
    e.preventDefault();
    state.q = q.value.trim();
    apply(true);
  };
  window.addEventListener('popstate', () => {
    state = readUrl();
    apply(false);
  });
  window.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && document.activeElement?.tagName !== 'INPUT') select(null, false);
  });
}

function searchError(msg: string): void {
  const q = $<HTMLInputElement>('q');
  q.setCustomValidity(msg);
  q.reportValidity();
  window.setTimeout(() => q.setCustomValidity(''), 3000);
}

/** Highlights the nodes of the view that match `text` (others dim). */
async function highlight(text: string): Promise<void> {
  const seq = ++searchSeq;
  if (!text) {
    graph.matches = table.matches = null;
    graph.invalidate();
    table.refresh();
    document.body.dataset.matches = '';
    return;
  }
  try {
    const r = await api<{ results: { id: string }[] }>(`/api/search?view=${state.view}&limit=10000&q=${encodeURIComponent(text)}`);
    if (seq !== searchSeq) return;
    graph.matches = table.matches = new Set(r.results.map((x) => x.id));
    document.body.dataset.matches = String(graph.matches.size);
  } catch (e) {
    if (seq !== searchSeq) return;
    graph.matches = table.matches = null;
    if (e instanceof ApiError && e.status === 400) searchError(e.message);
  }
  graph.invalidate();
  table.refresh();
}

/** Makes the page show `state`: follows the view, opens the node. */
function apply(push: boolean): void {
  writeUrl(state, push);
  $<HTMLSelectElement>('f-system').value = state.system;
  $<HTMLSelectElement>('f-stopped').value = state.stopped;
  $<HTMLSelectElement>('f-unconnected').value = state.unconnected;
  $<HTMLSelectElement>('f-pseudo').value = state.pseudo;
  $<HTMLSelectElement>('mode').value = state.mode;
  $<HTMLSelectElement>('metric').value = state.metric;
  $<HTMLInputElement>('threshold').value = String(state.threshold);
  $<HTMLSelectElement>('saved').value = state.filter;
  const q = $<HTMLInputElement>('q');
  if (document.activeElement !== q || !q.value) q.value = state.q;
  graph.metric = state.metric;
  for (const a of $('views').querySelectorAll<HTMLElement>('a')) a.className = a.dataset.view === state.view ? 'active' : '';
  const path = `/api/topology/${state.view}/ws`;
  const query = filterQuery(state);
  const key = `${path}?${query}`;
  if (key !== followed) {
    followed = key;
    model.clear();
    graph.clear();
    graph.multi.clear();
    bulkBar();
    toWorker({ type: 'reset' });
    received = false;
    unseen = null;
    expectedTotal = 0;
    pending = { add: [], update: [], remove: [] };
    perf.resetAt = performance.now();
    perf.firstDataAt = 0;
    queued = [];
    live.follow(query ? `${path}?${query}` : path);
    void highlight(q.value.trim() === state.q ? '' : q.value.trim());
  }
  graph.selected = state.node || null;
  table.selected = graph.selected;
  if (state.node) details.show(state.view, state.node);
  else details.hide();
  showMode();
}
let followed = '';

function select(id: string | null, shift: boolean): void {
  if (shift && id) {
    const n = model.get(id);
    if (!n || n.pseudo || !n.probe || !canControl('docker_stop_container')) return;
    if (graph.multi.has(id)) graph.multi.delete(id);
    else graph.multi.add(id);
    graph.invalidate();
    table.refresh();
    bulkBar();
    return;
  }
  state.node = id ?? '';
  apply(true);
}

// ------------------------------------------------------------------ live data

function onConn(s: ConnState, detail?: string): void {
  const c = $('conn');
  const shown = paused ? 'paused' : s;
  c.dataset.state = shown;
  c.textContent = shown === 'disconnected' ? 'disconnected, retrying' : shown;
  c.title = detail ?? '';
  if (s === 'disconnected') banner(`Disconnected from the app server (${detail ?? 'retrying'})`);
  else if (s === 'live') {
    if (!$('banner').textContent?.startsWith('Disconnected') || !me) return;
    banner(null);
    void refreshViews();
  }
}

function setPaused(p: boolean): void {
  paused = p;
  const b = $('pause');
  b.textContent = p ? 'Resume' : 'Pause';
  b.setAttribute('aria-pressed', String(p));
  $('conn').dataset.state = p ? 'paused' : 'live';
  $('conn').textContent = p ? 'paused' : 'live';
  if (!p) {
    const q = queued;
    queued = [];
    for (const d of q) applyDiff(d);
  }
}

function onDiff(d: Diff): void {
  if (paused) {
    queued.push(d);
    // A long pause: keep only what a fresh start needs.
    if (queued.length > 1000) {
      queued = [];
      followed = '';
      setPaused(false);
      apply(false);
    }
    return;
  }
  applyDiff(d);
}

/** During a reset (which may come in several messages): the nodes shown
 * before it that it has not named yet; they go when its last message has come. */
let unseen: Set<string> | null = null;
/** The view's size as the reset announced it, until the reset is complete. */
let expectedTotal = 0;
/** Layout work held back until a reset is complete, so it is laid out as one. */
let pending: { add: NodeJson[]; update: NodeJson[]; remove: string[] } = { add: [], update: [], remove: [] };

function applyDiff(d: Diff): void {
  const t0 = performance.now();
  const add: NodeJson[] = [];
  const update: NodeJson[] = [...(d.update ?? [])];
  const remove: string[] = [...(d.remove ?? [])];
  if (d.reset) {
    unseen = new Set(model.keys());
    expectedTotal = d.total ?? 0;
  }
  if (unseen) {
    // Compared with what is shown, so nothing that stayed moves.
    for (const n of d.add ?? []) {
      unseen.delete(n.id);
      (model.has(n.id) ? update : add).push(n);
    }
    for (const n of update) unseen.delete(n.id);
    if (!d.more) {
      remove.push(...unseen);
      unseen = null;
      expectedTotal = 0;
    }
  } else {
    add.push(...(d.add ?? []));
  }
  for (const id of remove) {
    model.delete(id);
    graph.multi.delete(id);
  }
  let edges = add.length > 0 || remove.length > 0;
  for (const n of add) model.set(n.id, n);
  for (const n of update) {
    const old = model.get(n.id);
    if (!edges && (!old || !sameList(old.adjacency, n.adjacency))) edges = true;
    model.set(n.id, n);
  }
  received = true;
  if (!perf.firstDataAt) perf.firstDataAt = performance.now();
  const mode = effectiveMode();
  if (mode === 'graph') {
    if (edges) {
      pending.add.push(...add);
      pending.update.push(...update);
      pending.remove.push(...remove);
    }
    if (!unseen) {
      if (!graph.active) feedWorkerAll();
      else if (pending.add.length + pending.update.length + pending.remove.length > 0)
        toWorker({
          type: 'diff',
          add: pending.add.map((n) => ({ id: n.id, adj: n.adjacency })),
          update: pending.update.map((n) => ({ id: n.id, adj: n.adjacency })),
          remove: pending.remove,
        });
      pending = { add: [], update: [], remove: [] };
    }
    graph.dataChanged();
    if (edges) graph.edgesChanged();
  } else {
    layoutStale = true;
  }
  table.loading = unseen !== null;
  table.refresh();
  if (details.current && (update.some((n) => n.id === details.current) || remove.includes(details.current))) details.touched();
  if (remove.length) bulkBar();
  showMode();
  emptyState();
  perf.lastApplyMs = performance.now() - t0;
  perf.applies++;
}
let layoutStale = false;

function sameList(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function feedWorkerAll(): void {
  pending = { add: [], update: [], remove: [] };
  toWorker({ type: 'reset' });
  toWorker({ type: 'diff', add: [...model.values()].map((n) => ({ id: n.id, adj: n.adjacency })), update: [], remove: [] });
  layoutStale = false;
}

function showMode(): void {
  const mode = effectiveMode();
  const isGraph = mode === 'graph';
  if (isGraph && (!graph.active || layoutStale)) {
    graph.active = true;
    if (layoutStale) feedWorkerAll();
    graph.invalidate();
  }
  graph.active = isGraph;
  table.active = !isGraph;
  $('graph').hidden = !isGraph;
  $('fit').hidden = !isGraph;
  $('table').hidden = isGraph;
  document.body.dataset.mode = mode;
  if (!isGraph) {
    layoutStale = true;
    table.paint();
  }
}

function emptyState(): void {
  const e = $('empty');
  if (!received || model.size > 0) {
    e.hidden = true;
    return;
  }
  const total = views.reduce((s, v) => s + v.stats.node_count, 0);
  const filtered = filterQuery(state) !== '';
  e.hidden = false;
  e.textContent =
    total === 0
      ? 'No probes have reported yet. Start a probe pointed at this app (probe --app URL).'
      : filtered
        ? 'Everything in this view is filtered out. Change the filters or the search.'
        : `Nothing to show in ${views.find((v) => v.id === state.view)?.name ?? state.view} yet.`;
  e.dataset.reason = total === 0 ? 'no-probes' : filtered ? 'filtered' : 'empty';
}

function tooltip(id: string | null, x: number, y: number): void {
  const t = $('tooltip');
  const n = id ? model.get(id) : undefined;
  if (!n) {
    t.hidden = true;
    return;
  }
  const cpu = n.metrics.cpu_usage_percent;
  const mem = n.metrics.memory_usage_bytes;
  t.replaceChildren();
  const b = document.createElement('b');
  b.textContent = n.label;
  t.append(b, document.createElement('br'), n.labelMinor || '');
  const parts = [n.pseudo ? 'pseudo' : n.stale ? 'stale' : n.state];
  if (cpu !== undefined) parts.push(`CPU ${cpu.toFixed(1)} %`);
  if (mem !== undefined) parts.push(`memory ${formatBytes(mem)}`);
  t.append(document.createElement('br'), parts.join(' · '));
  t.style.left = `${x + 14}px`;
  t.style.top = `${y + 14}px`;
  t.hidden = false;
}

// ------------------------------------------------------------------ bulk controls

const BULK: [string, string][] = [
  ['docker_stop_container', 'Stop'],
  ['docker_start_container', 'Start'],
  ['docker_restart_container', 'Restart'],
  ['docker_pause_container', 'Pause'],
  ['docker_unpause_container', 'Unpause'],
  ['docker_remove_container', 'Remove'],
];

function bulkBar(results?: { id: string; ok: boolean; error?: string }[]): void {
  const bar = $('bulk');
  const ids = [...graph.multi].filter((id) => model.has(id));
  if (!ids.length && !results) {
    bar.hidden = true;
    return;
  }
  bar.hidden = false;
  bar.replaceChildren();
  const title = document.createElement('b');
  title.textContent = `${ids.length} selected`;
  bar.append(title);
  for (const [control, human] of BULK) {
    if (!canControl(control)) continue;
    const b = document.createElement('button');
    b.textContent = human;
    b.dataset.control = control;
    b.onclick = async () => {
      if (DESTRUCTIVE.has(control) && b.dataset.confirm !== '1') {
        b.dataset.confirm = '1';
        b.textContent = `Confirm ${human.toLowerCase()} of ${ids.length}?`;
        b.classList.add('danger');
        return;
      }
      b.disabled = true;
      const out = await Promise.all(
        ids.map(async (id) => {
          const n = model.get(id);
          if (!n?.probe) return { id, ok: false, error: 'no probe reports it' };
          const r = await runControl(n.probe, id, control, control === 'docker_stop_container' ? { timeout: '5' } : {});
          return { id, ok: r.ok, error: r.error };
        }),
      );
      bulkBar(out);
    };
    bar.append(b);
  }
  const clear = document.createElement('button');
  clear.textContent = 'Clear';
  clear.onclick = () => {
    graph.multi.clear();
    graph.invalidate();
    table.refresh();
    bulkBar();
  };
  bar.append(clear);
  if (results) {
    const ul = document.createElement('ul');
    ul.className = 'results';
    for (const r of results) {
      const li = document.createElement('li');
      li.className = r.ok ? 'ok' : 'error';
      li.dataset.id = r.id;
      li.textContent = `${model.get(r.id)?.label ?? r.id}: ${r.ok ? 'done' : r.error ?? 'failed'}`;
      ul.append(li);
    }
    bar.append(ul);
  }
}


void boot();
