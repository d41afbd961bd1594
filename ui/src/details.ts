// The details panel of a selected node: metadata, labels, sets, sparklines
// of its series, parents and children, connections (rows select the other
// node), the controls its probe offers, and logs and a terminal attached
// through /api/pipe/{id}.

import type { Terminal } from '@xterm/xterm';

interface XtermModules {
  Terminal: typeof import('@xterm/xterm').Terminal;
  FitAddon: typeof import('@xterm/addon-fit').FitAddon;
}

async function loadXterm(): Promise<XtermModules> {
  const [{ Terminal }, { FitAddon }] = await Promise.all([import('@xterm/xterm'), import('@xterm/addon-fit')]);
  return { Terminal, FitAddon };
}
import { api, ApiError, viewOfTopology, wsUrl } from './api';
import { formatBytes } from './table';

interface Point {
  ts: number;
  min: number;
  max: number;
  avg: number;
}

interface MetricDetails {
  value: number;
  min: number;
  max: number;
  samples: [number, number][];
  series?: Point[];
}

interface Relative {
  topology: string;
  id: string;
  label: string;
}

interface ControlView {
  id: string;
  human: string;
  icon: string;
  rank: number;
  probe: string;
}

export interface NodeDetails {
  id: string;
  label: string;
  labelMinor: string;
  pseudo: boolean;
  probe: string | null;
  metadata: Record<string, string>;
  labels: Record<string, string>;
  sets: Record<string, string[]>;
  metrics: Record<string, MetricDetails>;
  parents: Relative[];
  children: Relative[];
  outgoing: string[];
  incoming: string[];
  controls: ControlView[];
}

export interface PanelHost {
  canControl(control: string): boolean;
  open(view: string, id: string): void;
  close(): void;
  labelOf(id: string): string;
}

/** Controls that change or end a container: asked twice. */
export const DESTRUCTIVE = new Set(['docker_stop_container', 'docker_restart_container', 'docker_remove_container', 'docker_pause_container']);
const PIPED = new Set(['docker_logs', 'docker_exec_container']);

export async function runControl(probe: string, node: string, control: string, args: Record<string, string> = {}): Promise<{ ok: boolean; error?: string; pipe_url?: string }> {
  try {
    return await api(`/api/control/${encodeURIComponent(probe)}/${encodeURIComponent(node)}/${encodeURIComponent(control)}`, {
      method: 'POST',
      body: JSON.stringify(args),
    });
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}

export class DetailsPanel {
  private view = '';
  private id = '';
  private timer: number | undefined;
  private pipe: WebSocket | null = null;
  private term: Terminal | null = null;
  private generation = 0;
  /** The last control's outcome, kept across refreshes of the panel. */
  private outcome: { text: string; cls: string } | null = null;
  private controlsKey = '';
  private controlsEl: HTMLElement | null = null;

  constructor(private root: HTMLElement, private host: PanelHost) {}

  show(view: string, id: string): void {
    if (view === this.view && id === this.id && !this.root.hidden) return;
    this.hide();
    this.view = view;
    this.id = id;
    this.root.hidden = false;
    this.root.innerHTML = '<p class="muted">Loading…</p>';
    void this.load(true);
    this.timer = window.setInterval(() => void this.load(false), 5000);
  }

  hide(): void {
    window.clearInterval(this.timer);
    window.clearTimeout(this.refreshSoon);
    this.refreshSoon = undefined;
    this.closePipe();
    this.root.hidden = true;
    this.root.innerHTML = '';
    this.id = '';
    this.outcome = null;
    this.controlsEl = null;
    this.generation++;
  }

  get current(): string {
    return this.id;
  }

  /** The node changed in a diff: refresh (at most every 2 s). */
  touched(): void {
    if (!this.id || this.pipe || this.refreshSoon !== undefined) return;
    this.refreshSoon = window.setTimeout(() => {
      this.refreshSoon = undefined;
      void this.load(false);
    }, 2000);
  }
  private refreshSoon: number | undefined;

  private async load(first: boolean): Promise<void> {
    const gen = this.generation;
    let d: NodeDetails;
    try {
      d = (await api<{ node: NodeDetails }>(`/api/topology/${this.view}/${encodeURIComponent(this.id)}`)).node;
    } catch (e) {
      if (gen !== this.generation) return;
      if (e instanceof ApiError && e.status === 404) {
        this.root.innerHTML = '';
        this.root.append(this.header(this.id, ''), para('not-found', `Not found: no node “${this.id}” in ${this.view}. It may have gone, or the link is old.`));
      } else if (first) {
        this.root.innerHTML = '';
        this.root.append(this.header(this.id, ''), para('error', (e as Error).message));
      }
      return;
    }
    if (gen !== this.generation) return;
    // A pipe in use keeps its part of the panel; the rest is redrawn.
    const pipeBox = this.root.querySelector('.pipe');
    const scroll = this.root.scrollTop;
    this.root.innerHTML = '';
    this.render(d);
    if (pipeBox) this.root.append(pipeBox);
    this.root.scrollTop = scroll;
  }

  private header(title: string, minor: string): HTMLElement {
    const h = document.createElement('div');
    h.className = 'dhead';
    const t = document.createElement('h2');
    t.textContent = title;
    const m = document.createElement('div');
    m.className = 'minor';
    m.textContent = minor;
    const close = document.createElement('button');
    close.className = 'close';
    close.textContent = '×';
    close.title = 'Close';
    close.addEventListener('click', () => this.host.close());
    h.append(close, t, m);
    return h;
  }

  private render(d: NodeDetails): void {
    const r = this.root;
    r.append(this.header(d.label, d.labelMinor));
    if (d.pseudo) r.append(para('muted', 'A pseudo node: addresses no probe owns.'));
    const controls = d.controls.filter((c) => this.host.canControl(c.id));
    if (controls.length) {
      // The same controls keep their buttons (and a pending confirmation).
      const key = controls.map((c) => `${c.probe}/${c.id}`).join(',');
      if (key !== this.controlsKey || !this.controlsEl) {
        this.controlsKey = key;
        this.controlsEl = this.controls(d, controls);
      }
      r.append(this.controlsEl);
    }
    const metrics = Object.entries(d.metrics);
    if (metrics.length) {
      const box = section('Metrics');
      for (const [name, m] of metrics) box.append(sparkRow(name, m));
      r.append(box);
    }
    if (Object.keys(d.metadata).length) r.append(kvSection('Info', d.metadata));
    if (Object.keys(d.labels).length) r.append(kvSection('Labels', d.labels));
    for (const [name, values] of Object.entries(d.sets)) {
      const box = section(name.replace(/_/g, ' '));
      const ul = document.createElement('ul');
      for (const v of values.slice(0, 200)) {
        const li = document.createElement('li');
        li.textContent = v;
        ul.append(li);
      }
      box.append(ul);
      r.append(box);
    }
    for (const [title, list] of [['Parents', d.parents], ['Children', d.children]] as const) {
      if (!list.length) continue;
      const box = section(`${title} (${list.length})`);
      box.append(
        table(
          ['Name', 'Kind'],
          list.slice(0, 500).map((x) => ({
            cells: [x.label, x.topology.replace('_', ' ')],
            onClick: viewOfTopology(x.topology) ? () => this.host.open(viewOfTopology(x.topology) as string, x.id) : undefined,
          })),
        ),
      );
      r.append(box);
    }
    for (const [title, list] of [['Inbound', d.incoming], ['Outbound', d.outgoing]] as const) {
      const box = section(`${title} connections (${list.length})`);
      if (!list.length) box.append(para('muted', 'none'));
      else
        box.append(
          table(
            ['Node'],
            list.slice(0, 500).map((id) => ({ cells: [this.host.labelOf(id)], onClick: () => this.host.open(this.view, id) })),
          ),
        );
      r.append(box);
    }
  }

  private controls(d: NodeDetails, list: ControlView[]): HTMLElement {
    const box = section('Controls');
    box.classList.add('controls');
    const result = para(`result ${this.outcome?.cls ?? ''}`, this.outcome?.text ?? '');
    const row = document.createElement('div');
    row.className = 'buttons';
    for (const c of list) {
      const b = document.createElement('button');
      b.textContent = c.human;
      b.dataset.control = c.id;
      b.addEventListener('click', async () => {
        if (PIPED.has(c.id)) {
          void this.openPipe(c, d);
          return;
        }
        if (DESTRUCTIVE.has(c.id) && b.dataset.confirm !== '1') {
          b.dataset.confirm = '1';
          b.textContent = `Confirm ${c.human.toLowerCase()}?`;
          b.classList.add('danger');
          window.setTimeout(() => {
            b.dataset.confirm = '';
            b.textContent = c.human;
            b.classList.remove('danger');
          }, 4000);
          return;
        }
        b.disabled = true;
        result.textContent = `${c.human}…`;
        const res = await runControl(c.probe, d.id, c.id, c.id === 'docker_stop_container' ? { timeout: '5' } : {});
        b.disabled = false;
        b.dataset.confirm = '';
        b.textContent = c.human;
        b.classList.remove('danger');
        this.outcome = {
          text: res.ok ? `${c.human}: done` : `${c.human} failed: ${res.error ?? 'unknown error'}`,
          cls: res.ok ? 'ok' : 'error',
        };
        result.textContent = this.outcome.text;
        result.className = `result ${this.outcome.cls}`;
        void this.load(false);
      });
      row.append(b);
    }
    box.append(row, result);
    return box;
  }

  private closePipe(): void {
    if (this.pipe) {
      this.pipe.onclose = null;
      this.pipe.close();
    }
    this.pipe = null;
    this.term?.dispose();
    this.term = null;
    this.root.querySelector('.pipe')?.remove();
  }

  private async openPipe(c: ControlView, d: NodeDetails): Promise<void> {
    this.closePipe();
    const logs = c.id === 'docker_logs';
    const box = section(logs ? 'Logs' : 'Terminal');
    box.classList.add('pipe', logs ? 'logs' : 'terminal');
    const status = para('muted', 'attaching…');
    const close = document.createElement('button');
    close.textContent = 'Close';
    close.addEventListener('click', () => this.closePipe());
    box.append(close, status);
    this.root.append(box);
    box.scrollIntoView({ block: 'nearest' });
    // The terminal emulator loads when a terminal is first opened, before
    // the socket opens (its first bytes must find the terminal there).
    let xterm: XtermModules | null = null;
    if (!logs) {
      try {
        xterm = await loadXterm();
      } catch (e) {
        status.textContent = `the terminal did not load: ${(e as Error).message}`;
        status.className = 'error';
        return;
      }
    }
    const res = await runControl(c.probe, d.id, c.id, logs ? { tail: '200', follow: 'true' } : { cmd: '/bin/sh', tty: 'true' });
    if (!res.ok || !res.pipe_url) {
      status.textContent = `${c.human} failed: ${res.error ?? 'no pipe'}`;
      status.className = 'error';
      return;
    }
    const ws = new WebSocket(wsUrl(res.pipe_url));
    ws.binaryType = 'arraybuffer';
    this.pipe = ws;
    const decoder = new TextDecoder();
    let write: (data: Uint8Array) => void;
    if (logs) {
      const pre = document.createElement('pre');
      pre.className = 'log';
      box.append(pre);
      let lines = 0;
      write = (data) => {
        const text = decoder.decode(data, { stream: true });
        pre.append(document.createTextNode(text));
        lines += text.split('\n').length - 1;
        // Keep the last ~2,000 lines.
        while (lines > 2000 && pre.firstChild) {
          lines -= (pre.firstChild.textContent ?? '').split('\n').length - 1;
          pre.firstChild.remove();
        }
        pre.scrollTop = pre.scrollHeight;
      };
    } else {
      const holder = document.createElement('div');
      holder.className = 'xterm-holder';
      box.append(holder);
      const { Terminal, FitAddon } = xterm as XtermModules;
      const term = new Terminal({ cursorBlink: true, fontSize: 13, convertEol: false, scrollback: 2000 });
      const fit = new FitAddon();
      term.loadAddon(fit);
      term.open(holder);
      this.term = term;
      const resize = () => {
        try {
          fit.fit();
        } catch {
          return;
        }
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'resize', width: term.cols, height: term.rows }));
      };
      term.onData((s) => {
        if (ws.readyState === WebSocket.OPEN) ws.send(new TextEncoder().encode(s));
      });
      ws.addEventListener('open', () => {
        resize();
        term.focus();
      });
      new ResizeObserver(resize).observe(holder);
      write = (data) => term.write(data);
    }
    ws.onopen = () => {
      status.textContent = logs ? 'following' : 'attached';
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data === 'string') {
        try {
          const m = JSON.parse(ev.data) as { error?: string };
          if (m.error) status.textContent = `closed: ${m.error}`;
        } catch {
          write(new TextEncoder().encode(ev.data));
        }
        return;
      }
      write(new Uint8Array(ev.data as ArrayBuffer));
    };
    ws.onclose = () => {
      if (this.pipe === ws) status.textContent = status.textContent?.startsWith('closed') ? status.textContent : 'closed';
    };
  }
}

function para(cls: string, text: string): HTMLElement {
  const p = document.createElement('p');
  p.className = cls;
  p.textContent = text;
  return p;
}

function section(title: string): HTMLElement {
  const s = document.createElement('section');
  const h = document.createElement('h3');
  h.textContent = title;
  s.append(h);
  return s;
}

function kvSection(title: string, kv: Record<string, string>): HTMLElement {
  const s = section(title);
  const dl = document.createElement('dl');
  for (const [k, v] of Object.entries(kv)) {
    const dt = document.createElement('dt');
    dt.textContent = k.replace(/_/g, ' ');
    const dd = document.createElement('dd');
    dd.textContent = v;
    dd.title = v;
    dl.append(dt, dd);
  }
  s.append(dl);
  return s;
}

function table(head: string[], rows: { cells: string[]; onClick?: () => void }[]): HTMLElement {
  const t = document.createElement('table');
  const tr = document.createElement('tr');
  for (const h of head) {
    const th = document.createElement('th');
    th.textContent = h;
    tr.append(th);
  }
  t.append(tr);
  for (const r of rows) {
    const row = document.createElement('tr');
    for (const c of r.cells) {
      const td = document.createElement('td');
      td.textContent = c;
      row.append(td);
    }
    if (r.onClick) {
      row.className = 'link';
      row.addEventListener('click', r.onClick);
    }
    t.append(row);
  }
  return t;
}

function formatMetric(name: string, v: number): string {
  if (name.includes('bytes_per_second')) return `${formatBytes(v)}/s`;
  if (name.includes('bytes')) return formatBytes(v);
  if (name.includes('percent')) return `${v.toFixed(1)} %`;
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

/** A metric's name, value and a sparkline: the app's 15 s series over the
 * last hour where it keeps one, else the report's recent samples. */
function sparkRow(name: string, m: MetricDetails): HTMLElement {
  const row = document.createElement('div');
  row.className = 'spark';
  row.dataset.metric = name;
  const pts: [number, number][] = m.series && m.series.length > 1 ? m.series.map((p) => [p.ts, p.avg]) : m.samples;
  const label = document.createElement('span');
  label.className = 'name';
  label.textContent = name.replace(/_/g, ' ');
  const value = document.createElement('span');
  value.className = 'value';
  value.textContent = formatMetric(name, m.value);
  const W = 120, H = 24;
  const svgNs = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(svgNs, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('width', String(W));
  svg.setAttribute('height', String(H));
  svg.dataset.points = String(pts.length);
  if (pts.length) {
    const t0 = pts[0][0], t1 = pts[pts.length - 1][0];
    let lo = Infinity, hi = -Infinity;
    for (const [, v] of pts) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    const span = hi - lo || 1;
    const line = pts
      .map(([t, v], i) => {
        const x = t1 > t0 ? ((t - t0) / (t1 - t0)) * (W - 2) + 1 : pts.length > 1 ? (i / (pts.length - 1)) * (W - 2) + 1 : W / 2;
        const y = H - 2 - ((v - lo) / span) * (H - 4);
        return `${x.toFixed(1)},${y.toFixed(1)}`;
      })
      .join(' ');
    const poly = document.createElementNS(svgNs, 'polyline');
    poly.setAttribute('points', pts.length === 1 ? `${line} ${line}` : line);
    poly.setAttribute('fill', 'none');
    poly.setAttribute('stroke', '#2a6fdb');
    poly.setAttribute('stroke-width', '1.5');
    svg.append(poly);
    svg.setAttribute('aria-label', `${name}: ${pts.length} points, min ${formatMetric(name, lo)}, max ${formatMetric(name, hi)}`);
  }
  row.append(label, svg, value);
  return row;
}
