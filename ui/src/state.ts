// The whole picture lives in the URL's query string (view, filters, query,
// selected node, mode, metric, threshold), so a copied link opens the same
// picture. Defaults are left out to keep links short.

export interface UiState {
  view: string;
  system: string;
  stopped: string;
  unconnected: string;
  pseudo: string;
  q: string;
  filter: string;
  node: string;
  mode: 'auto' | 'graph' | 'table';
  metric: 'none' | 'cpu' | 'memory';
  threshold: number;
}

export const DEFAULTS: UiState = {
  view: 'containers',
  system: 'application',
  stopped: 'running',
  unconnected: 'show',
  pseudo: 'show',
  q: '',
  filter: '',
  node: '',
  mode: 'auto',
  metric: 'cpu',
  threshold: 3000,
};

export function readUrl(): UiState {
  const p = new URLSearchParams(location.search);
  const s: UiState = { ...DEFAULTS };
  for (const key of Object.keys(DEFAULTS) as (keyof UiState)[]) {
    const v = p.get(key);
    if (v === null) continue;
    if (key === 'threshold') {
      const n = Number(v);
      if (Number.isFinite(n) && n >= 1) s.threshold = Math.floor(n);
    } else {
      (s as unknown as Record<string, string>)[key] = v;
    }
  }
  if (!['auto', 'graph', 'table'].includes(s.mode)) s.mode = 'auto';
  if (!['none', 'cpu', 'memory'].includes(s.metric)) s.metric = 'cpu';
  return s;
}

export function writeUrl(s: UiState, push = false): void {
  const p = new URLSearchParams();
  for (const key of Object.keys(DEFAULTS) as (keyof UiState)[]) {
    if (s[key] !== DEFAULTS[key]) p.set(key, String(s[key]));
  }
  const qs = p.toString();
  const url = `${location.pathname}${qs ? `?${qs}` : ''}`;
  if (url === `${location.pathname}${location.search}`) return;
  if (push) history.pushState(null, '', url);
  else history.replaceState(null, '', url);
}

/** The API query string of the view filters. */
export function filterQuery(s: UiState): string {
  const p = new URLSearchParams();
  if (s.system !== DEFAULTS.system) p.set('system', s.system);
  if (s.stopped !== DEFAULTS.stopped) p.set('stopped', s.stopped);
  if (s.unconnected !== DEFAULTS.unconnected) p.set('unconnected', s.unconnected);
  if (s.pseudo !== DEFAULTS.pseudo) p.set('pseudo', s.pseudo);
  if (s.q) p.set('q', s.q);
  if (s.filter) p.set('filter', s.filter);
  return p.toString();
}
