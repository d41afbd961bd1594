// The API is the UI's only source. Requests carry the browser session's
// token (if any) as a bearer header; WebSockets, which cannot set headers,
// carry it as ?token=.

export interface NodeJson {
  id: string;
  label: string;
  labelMinor: string;
  shape: string;
  pseudo: boolean;
  stale: boolean;
  state: string;
  probe: string | null;
  count: number;
  metrics: Record<string, number>;
  adjacency: string[];
}

export interface ViewInfo {
  id: string;
  name: string;
  stats: { node_count: number; pseudo_node_count: number; edge_count: number };
}

export interface Diff {
  reset?: boolean;
  /** The nodes in the view, on the first message of a reset. */
  total?: number;
  /** More messages of this diff follow. */
  more?: boolean;
  add?: NodeJson[];
  update?: NodeJson[];
  remove?: string[];
}

export interface Whoami {
  name: string;
  role: 'viewer' | 'operator' | 'admin' | 'probe' | null;
  token_required: boolean;
  open: boolean;
  read_only: boolean;
  allowed_controls: string[] | null;
}

export class ApiError extends Error {
  constructor(public status: number, message: string) {
    super(message);
  }
}

const KEY = 'orchestrator-token';
let token = sessionStorage.getItem(KEY) ?? '';

export function setToken(t: string): void {
  token = t;
  if (t) sessionStorage.setItem(KEY, t);
  else sessionStorage.removeItem(KEY);
}

export function hasToken(): boolean {
  return token !== '';
}

export async function api<T = unknown>(path: string, init: RequestInit = {}): Promise<T> {
  const headers = new Headers(init.headers);
  if (token) headers.set('Authorization', `Bearer ${token}`);
  if (init.body && !headers.has('Content-Type')) headers.set('Content-Type', 'application/json');
  let res: Response;
  try {
    res = await fetch(path, { ...init, headers });
  } catch {
    throw new ApiError(0, 'the app server does not answer');
  }
  const text = await res.text();
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!res.ok) {
    const msg = (body as { error?: string; message?: string } | null)?.error ?? (body as { message?: string } | null)?.message ?? res.statusText;
    throw new ApiError(res.status, msg || `HTTP ${res.status}`);
  }
  return body as T;
}

export function wsUrl(path: string): string {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const sep = path.includes('?') ? '&' : '?';
  return `${proto}//${location.host}${path}${token ? `${sep}token=${encodeURIComponent(token)}` : ''}`;
}

/** The view an id of another topology is shown in (for parents and children). */
export function viewOfTopology(topology: string): string | null {
  switch (topology) {
    case 'process': return 'processes';
    case 'container': return 'containers';
    case 'container_image': return 'containers-by-image';
    case 'host': return 'hosts';
    case 'pod': return 'pods';
    case 'service': return 'services';
    default: return null;
  }
}
