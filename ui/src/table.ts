// Table mode: every node of the view as a sortable row, for views too large
// to read as a graph. Only the rows in sight exist in the DOM (fixed row
// height, a spacer for the rest), so 100,000 processes scroll smoothly.

import type { NodeJson } from './api';
import { colourOf } from './graph';

const ROW = 28;

type Col = 'label' | 'labelMinor' | 'state' | 'cpu' | 'memory' | 'connections';

export interface TableEvents {
  select(id: string): void;
  toggle(id: string, on: boolean): void;
}

export function formatBytes(b: number): string {
  if (!Number.isFinite(b)) return '';
  const u = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (b >= 1024 && i < u.length - 1) {
    b /= 1024;
    i++;
  }
  return `${b.toFixed(b < 10 && i > 0 ? 1 : 0)} ${u[i]}`;
}

export class TableView {
  private rows: NodeJson[] = [];
  private sort: Col = 'label';
  private desc = false;
  private body: HTMLDivElement;
  private spacer: HTMLDivElement;
  private rowsEl: HTMLDivElement;
  private head: HTMLDivElement;
  private incoming = new Map<string, number>();
  nodes: Map<string, NodeJson> = new Map();
  selected: string | null = null;
  multi = new Set<string>();
  matches: Set<string> | null = null;
  checkable = false;
  active = false;
  private stale = true;
  private frame = 0;

  constructor(private root: HTMLElement, private events: TableEvents) {
    root.innerHTML = '';
    this.head = el('div', 'thead');
    const cols: [Col, string][] = [
      ['label', 'Name'],
      ['labelMinor', 'Detail'],
      ['state', 'State'],
      ['cpu', 'CPU'],
      ['memory', 'Memory'],
      ['connections', 'Connections'],
    ];
    this.head.append(el('span', 'c-check'));
    for (const [c, name] of cols) {
      const h = el('button', `c-${c}`);
      h.textContent = name;
      h.dataset.col = c;
      h.addEventListener('click', () => {
        if (this.sort === c) this.desc = !this.desc;
        else {
          this.sort = c;
          this.desc = c === 'cpu' || c === 'memory' || c === 'connections';
        }
        this.refresh();
      });
      this.head.append(h);
    }
    this.body = el('div', 'tbody');
    this.spacer = el('div', 'spacer');
    this.rowsEl = el('div', 'rows');
    this.body.append(this.spacer, this.rowsEl);
    this.body.addEventListener('scroll', () => this.paint());
    root.append(this.head, this.body);
  }

  /** A reset is arriving in parts: sorted once it is complete. */
  loading = false;

  /** The data changed: re-sort at the next frame. */
  refresh(): void {
    this.stale = true;
    if (!this.frame) {
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        if (this.active) this.paint();
      });
    }
  }

  private resort(): void {
    this.incoming.clear();
    for (const n of this.nodes.values()) for (const t of n.adjacency) this.incoming.set(t, (this.incoming.get(t) ?? 0) + 1);
    const rows = [...this.nodes.values()].filter((n) => !this.matches || this.matches.has(n.id));
    const key = (n: NodeJson): number | string => {
      switch (this.sort) {
        case 'cpu': return n.metrics.cpu_usage_percent ?? -1;
        case 'memory': return n.metrics.memory_usage_bytes ?? -1;
        case 'connections': return this.connections(n);
        case 'state': return n.pseudo ? 'pseudo' : n.stale ? 'stale' : n.state;
        default: return (n[this.sort] || '').toLowerCase();
      }
    };
    const dir = this.desc ? -1 : 1;
    const keyed = rows.map((n) => [key(n), n] as const);
    keyed.sort((a, b) => (a[0] < b[0] ? -dir : a[0] > b[0] ? dir : a[1].id < b[1].id ? -1 : 1));
    this.rows = keyed.map((k) => k[1]);
    for (const b of this.head.querySelectorAll<HTMLButtonElement>('button')) {
      b.dataset.sorted = b.dataset.col === this.sort ? (this.desc ? 'desc' : 'asc') : '';
    }
    this.stale = false;
  }

  private connections(n: NodeJson): number {
    return n.adjacency.length + (this.incoming.get(n.id) ?? 0);
  }

  paint(): void {
    if (this.loading && this.rows.length > 0) return;
    if (this.stale) this.resort();
    this.spacer.style.height = `${this.rows.length * ROW}px`;
    const first = Math.max(0, Math.floor(this.body.scrollTop / ROW) - 5);
    const last = Math.min(this.rows.length, first + Math.ceil(this.body.clientHeight / ROW) + 10);
    this.rowsEl.style.transform = `translateY(${first * ROW}px)`;
    const frag = document.createDocumentFragment();
    for (let i = first; i < last; i++) frag.append(this.row(this.rows[i]));
    this.rowsEl.replaceChildren(frag);
    this.root.dataset.rows = String(this.rows.length);
  }

  private row(n: NodeJson): HTMLElement {
    const r = el('div', 'tr');
    r.dataset.id = n.id;
    if (n.id === this.selected) r.classList.add('selected');
    const check = el('span', 'c-check');
    if (this.checkable && !n.pseudo && n.probe) {
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.checked = this.multi.has(n.id);
      box.setAttribute('aria-label', `select ${n.label}`);
      box.addEventListener('click', (e) => {
        e.stopPropagation();
        this.events.toggle(n.id, box.checked);
      });
      check.append(box);
    }
    const dot = el('span', 'dot');
    dot.style.background = colourOf(n);
    const name = el('span', 'c-label');
    name.append(dot, document.createTextNode(n.label));
    name.title = n.label;
    const cpu = n.metrics.cpu_usage_percent;
    const mem = n.metrics.memory_usage_bytes;
    r.append(
      check,
      name,
      text('c-labelMinor', n.labelMinor),
      text('c-state', n.pseudo ? 'pseudo' : n.stale ? 'stale' : n.state),
      text('c-cpu', cpu === undefined ? '' : `${cpu.toFixed(1)} %`),
      text('c-memory', mem === undefined ? '' : formatBytes(mem)),
      text('c-connections', String(this.connections(n))),
    );
    r.addEventListener('click', () => this.events.select(n.id));
    return r;
  }
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  e.className = cls;
  return e;
}

function text(cls: string, t: string): HTMLElement {
  const e = el('span', cls);
  e.textContent = t;
  return e;
}
