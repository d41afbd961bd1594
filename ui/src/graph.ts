// The graph on a 2D canvas: nodes batched by shape and colour into one
// path each, edges into one path, labels only where they are readable, and
// only what is on screen. A frame is drawn only when something changed
// (positions, data, hover, zoom), so an idle page costs nothing.

import type { NodeJson } from './api';

export const STATE_COLOURS: Record<string, string> = {
  running: '#4f8fe8',
  paused: '#9b7be0',
  restarting: '#f0a030',
  stopped: '#9aa3ad',
  unhealthy: '#e5484d',
  stale: '#d9b44a',
  pseudo: '#c4cad1',
};

export function colourOf(n: NodeJson): string {
  if (n.pseudo) return STATE_COLOURS.pseudo;
  if (n.stale) return STATE_COLOURS.stale;
  return STATE_COLOURS[n.state] ?? STATE_COLOURS.running;
}

const BASE_R = 14;

export interface GraphEvents {
  select(id: string | null, shift: boolean): void;
  hover(id: string | null, x: number, y: number): void;
}

export class GraphView {
  private ctx: CanvasRenderingContext2D;
  private ids: string[] = [];
  private index = new Map<string, number>();
  private xy: Float32Array = new Float32Array(0);
  private k = 1;
  private tx = 0;
  private ty = 0;
  private dirty = true;
  private userMoved = false;
  private hovered: string | null = null;
  private neighbours = new Set<string>();
  private dragging: { x: number; y: number; tx: number; ty: number; moved: boolean } | null = null;
  private width = 0;
  private height = 0;
  private edgeLayer = document.createElement('canvas');
  /** The transform and time the edge layer was drawn at, and its edge count. */
  private edgeAt = { k: 1, tx: 0, ty: 0, when: 0, n: 0 };
  private edgesDirty = true;
  private lastGesture = 0;
  /** The layout worker is still moving nodes. */
  layoutRunning = false;
  /** Edges drawn at most (a stable sample beyond it; a hovered node shows all its own). */
  maxEdges = 20_000;
  private dpr = 1;
  /** Frames drawn and how long the last took (the benchmark reads these). */
  stats = { frames: 0, lastFrameMs: 0, nodesDrawn: 0, firstFrameAt: 0, firstCompleteAt: 0, drawMs: 0, edgesDrawn: 0, edgesTotal: 0 };
  nodes: Map<string, NodeJson> = new Map();
  selected: string | null = null;
  multi = new Set<string>();
  matches: Set<string> | null = null;
  metric: 'none' | 'cpu' | 'memory' = 'cpu';
  private maxMetric = 1;
  active = true;

  constructor(private canvas: HTMLCanvasElement, private events: GraphEvents) {
    // Desynchronized: frames go to the screen without waiting on the page's
    // compositor, which halves the cost of a frame where canvas is rastered
    // in software.
    this.ctx = canvas.getContext('2d', { alpha: false, desynchronized: true }) as CanvasRenderingContext2D;
    new ResizeObserver(() => this.resize()).observe(canvas);
    this.resize();
    canvas.addEventListener('wheel', (e) => this.onWheel(e), { passive: false });
    canvas.addEventListener('pointerdown', (e) => this.onDown(e));
    canvas.addEventListener('pointermove', (e) => this.onMove(e));
    canvas.addEventListener('pointerup', (e) => this.onUp(e));
    canvas.addEventListener('pointerleave', () => this.setHover(null, 0, 0));
    const loop = () => {
      if (this.dirty && this.active) this.draw();
      requestAnimationFrame(loop);
    };
    requestAnimationFrame(loop);
  }

  /** Node positions from the layout worker. */
  setPositions(ids: string[] | null, xy: Float32Array): void {
    if (ids) {
      this.ids = ids;
      this.index.clear();
      ids.forEach((id, i) => this.index.set(id, i));
    }
    this.xy = xy;
    if (!this.userMoved) this.fit(false);
    this.edgesDirty = true;
    this.invalidate();
  }

  /** The node data changed (a diff was applied). */
  dataChanged(): void {
    let max = 0;
    const key = this.metricKey();
    if (key) for (const n of this.nodes.values()) max = Math.max(max, n.metrics[key] ?? 0);
    this.maxMetric = max || 1;
    this.invalidate();
  }

  clear(): void {
    this.ids = [];
    this.index.clear();
    this.xy = new Float32Array(0);
    this.userMoved = false;
    this.hovered = null;
    this.neighbours.clear();
    this.edgeAt.n = 0;
    this.edgesDirty = true;
    this.invalidate();
  }

  invalidate(): void {
    this.dirty = true;
  }

  /** Connections changed (not only metrics): the edge layer is redrawn. */
  edgesChanged(): void {
    this.edgesDirty = true;
    this.dirty = true;
  }

  private interacting(now: number): boolean {
    return now - this.lastGesture < 150;
  }

  private renderEdges(sx: Float32Array, sy: Float32Array, visible: Uint8Array, n: number): void {
    const layer = this.edgeLayer;
    if (layer.width !== this.canvas.width || layer.height !== this.canvas.height) {
      layer.width = this.canvas.width;
      layer.height = this.canvas.height;
    }
    const ctx = layer.getContext('2d') as CanvasRenderingContext2D;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, layer.width, layer.height);
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    let total = 0;
    for (let i = 0; i < n; i++) {
      if (!visible[i]) continue;
      total += this.nodes.get(this.ids[i])?.adjacency.length ?? 0;
    }
    // Past maxEdges, every m-th edge: the same ones each time, so the
    // picture does not flicker.
    const every = Math.max(1, Math.ceil(total / this.maxEdges));
    const arrows = this.k > 0.5 && total <= 2000;
    const path = new Path2D(), heads = new Path2D();
    let seen = 0, drawn = 0;
    for (let i = 0; i < n; i++) {
      const node = this.nodes.get(this.ids[i]);
      if (!node) continue;
      for (const t of node.adjacency) {
        const j = this.index.get(t);
        if (j === undefined || j === i || (!visible[i] && !visible[j])) continue;
        if (seen++ % every !== 0) continue;
        drawn++;
        path.moveTo(sx[i], sy[i]);
        path.lineTo(sx[j], sy[j]);
        if (arrows) {
          const dx = sx[j] - sx[i], dy = sy[j] - sy[i];
          const len = Math.hypot(dx, dy) || 1;
          const target = this.nodes.get(t);
          const r = (target ? this.radius(target) : BASE_R) * this.k + 2;
          const ux = dx / len, uy = dy / len, s = 6;
          const ex = sx[j] - ux * r, ey = sy[j] - uy * r;
          heads.moveTo(ex, ey);
          heads.lineTo(ex - ux * s - uy * s * 0.5, ey - uy * s + ux * s * 0.5);
          heads.lineTo(ex - ux * s + uy * s * 0.5, ey - uy * s - ux * s * 0.5);
          heads.lineTo(ex, ey);
        }
      }
    }
    // Thin opaque lines draw fastest where there are many.
    ctx.lineWidth = drawn > 2000 ? 0.5 : 1;
    ctx.strokeStyle = drawn > 2000 ? '#b4bbc4' : 'rgba(120,130,145,0.55)';
    ctx.stroke(path);
    if (arrows) {
      ctx.fillStyle = 'rgba(120,130,145,0.7)';
      ctx.fill(heads);
    }
    this.edgeAt = { k: this.k, tx: this.tx, ty: this.ty, when: performance.now(), n: drawn };
    this.edgesDirty = false;
    this.stats.edgesDrawn = drawn;
    this.stats.edgesTotal = total;
  }

  /** Where a node is on screen (CSS pixels), if it is laid out. */
  screenOf(id: string): { x: number; y: number } | null {
    const i = this.index.get(id);
    if (i === undefined) return null;
    return { x: this.xy[2 * i] * this.k + this.tx, y: this.xy[2 * i + 1] * this.k + this.ty };
  }

  /** Every laid-out node's layout position (world coordinates). */
  positions(): Record<string, [number, number]> {
    const out: Record<string, [number, number]> = {};
    this.ids.forEach((id, i) => (out[id] = [this.xy[2 * i], this.xy[2 * i + 1]]));
    return out;
  }

  fit(byUser = true): void {
    if (byUser) this.userMoved = false;
    const n = this.ids.length;
    if (!n || !this.width) return;
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (let i = 0; i < n; i++) {
      const x = this.xy[2 * i], y = this.xy[2 * i + 1];
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
    }
    const pad = 40;
    const w = x1 - x0 + BASE_R * 4, h = y1 - y0 + BASE_R * 4;
    this.k = Math.min(2, Math.max(0.02, Math.min((this.width - pad * 2) / w, (this.height - pad * 2) / h)));
    this.tx = this.width / 2 - ((x0 + x1) / 2) * this.k;
    this.ty = this.height / 2 - ((y0 + y1) / 2) * this.k;
    this.invalidate();
  }

  zoomBy(f: number, cx = this.width / 2, cy = this.height / 2): void {
    const k = Math.min(8, Math.max(0.01, this.k * f));
    this.tx = cx - ((cx - this.tx) * k) / this.k;
    this.ty = cy - ((cy - this.ty) * k) / this.k;
    this.k = k;
    this.userMoved = true;
    this.lastGesture = performance.now();
    this.invalidate();
  }

  panBy(dx: number, dy: number): void {
    this.tx += dx;
    this.ty += dy;
    this.userMoved = true;
    this.lastGesture = performance.now();
    this.invalidate();
  }

  private metricKey(): string | null {
    return this.metric === 'cpu' ? 'cpu_usage_percent' : this.metric === 'memory' ? 'memory_usage_bytes' : null;
  }

  private radius(n: NodeJson): number {
    const key = this.metricKey();
    if (!key || n.pseudo) return BASE_R;
    const v = n.metrics[key] ?? 0;
    return BASE_R * (0.7 + 0.9 * Math.sqrt(Math.max(0, v) / this.maxMetric));
  }

  private resize(): void {
    const r = this.canvas.getBoundingClientRect();
    this.dpr = window.devicePixelRatio || 1;
    this.width = r.width;
    this.height = r.height;
    this.canvas.width = Math.max(1, Math.round(r.width * this.dpr));
    this.canvas.height = Math.max(1, Math.round(r.height * this.dpr));
    if (!this.userMoved) this.fit(false);
    this.edgesDirty = true;
    this.invalidate();
  }

  private hit(sx: number, sy: number): string | null {
    const wx = (sx - this.tx) / this.k, wy = (sy - this.ty) / this.k;
    let best: string | null = null;
    let bestD = Infinity;
    for (let i = 0; i < this.ids.length; i++) {
      const dx = this.xy[2 * i] - wx, dy = this.xy[2 * i + 1] - wy;
      const d = dx * dx + dy * dy;
      if (d < bestD) {
        bestD = d;
        best = this.ids[i];
      }
    }
    if (best === null) return null;
    const n = this.nodes.get(best);
    const r = (n ? this.radius(n) : BASE_R) + 4 / this.k;
    return bestD <= r * r ? best : null;
  }

  private setHover(id: string | null, x: number, y: number): void {
    if (id === this.hovered) {
      if (id) this.events.hover(id, x, y);
      return;
    }
    this.hovered = id;
    this.neighbours.clear();
    if (id) {
      const n = this.nodes.get(id);
      if (n) for (const t of n.adjacency) this.neighbours.add(t);
      for (const o of this.nodes.values()) if (o.adjacency.includes(id)) this.neighbours.add(o.id);
    }
    this.events.hover(id, x, y);
    this.invalidate();
  }

  private onWheel(e: WheelEvent): void {
    e.preventDefault();
    const r = this.canvas.getBoundingClientRect();
    this.zoomBy(Math.exp(-e.deltaY * 0.0015), e.clientX - r.left, e.clientY - r.top);
  }

  private onDown(e: PointerEvent): void {
    this.canvas.setPointerCapture(e.pointerId);
    this.dragging = { x: e.clientX, y: e.clientY, tx: this.tx, ty: this.ty, moved: false };
  }

  private onMove(e: PointerEvent): void {
    const r = this.canvas.getBoundingClientRect();
    if (this.dragging) {
      const dx = e.clientX - this.dragging.x, dy = e.clientY - this.dragging.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) this.dragging.moved = true;
      if (this.dragging.moved) {
        this.tx = this.dragging.tx + dx;
        this.ty = this.dragging.ty + dy;
        this.userMoved = true;
        this.lastGesture = performance.now();
        this.invalidate();
        return;
      }
    }
    this.setHover(this.hit(e.clientX - r.left, e.clientY - r.top), e.clientX - r.left, e.clientY - r.top);
  }

  private onUp(e: PointerEvent): void {
    const d = this.dragging;
    this.dragging = null;
    if (d && d.moved) return;
    const r = this.canvas.getBoundingClientRect();
    this.events.select(this.hit(e.clientX - r.left, e.clientY - r.top), e.shiftKey);
  }

  private draw(): void {
    const t0 = performance.now();
    this.dirty = false;
    const ctx = this.ctx;
    const { k, tx, ty } = this;
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    ctx.fillStyle = '#f7f8fa';
    ctx.fillRect(0, 0, this.width, this.height);
    const n = this.ids.length;
    if (!n) {
      this.stats.frames++;
      return;
    }
    const margin = BASE_R * 3 * k;
    const visible = new Uint8Array(n);
    const sx = new Float32Array(n), sy = new Float32Array(n);
    let onScreen = 0;
    for (let i = 0; i < n; i++) {
      sx[i] = this.xy[2 * i] * k + tx;
      sy[i] = this.xy[2 * i + 1] * k + ty;
      if (sx[i] > -margin && sx[i] < this.width + margin && sy[i] > -margin && sy[i] < this.height + margin) {
        visible[i] = 1;
        onScreen++;
      }
    }
    const focus = this.hovered;
    const dimmed = (id: string) =>
      (focus !== null && id !== focus && !this.neighbours.has(id)) || (this.matches !== null && !this.matches.has(id));

    // Edges: a layer of their own, redrawn only when they change (layout,
    // adjacency, zoom), moved as a picture while panning, and dimmed as a
    // picture while a node is hovered (its own edges are drawn on top).
    const now = performance.now();
    const moved = this.edgeAt.k !== k || this.edgeAt.tx !== tx || this.edgeAt.ty !== ty;
    const throttled = this.layoutRunning && now - this.edgeAt.when < 250;
    const gesture = this.interacting(now);
    if (!gesture && ((this.edgesDirty && !throttled) || moved)) {
      this.renderEdges(sx, sy, visible, n);
    } else if (this.edgesDirty || moved) {
      this.dirty = true; // draw again when the throttle or the gesture ends
    }
    if (this.edgeAt.n) {
      const s = k / this.edgeAt.k;
      ctx.save();
      ctx.setTransform(s, 0, 0, s, (tx - this.edgeAt.tx * s) * this.dpr, (ty - this.edgeAt.ty * s) * this.dpr);
      ctx.globalAlpha = focus ? 0.3 : 1;
      // Scaled only for the moment of a zoom (redrawn sharp after it):
      // nearest-neighbour scaling is several times cheaper in software.
      ctx.imageSmoothingEnabled = s === 1;
      ctx.drawImage(this.edgeLayer, 0, 0);
      ctx.restore();
    }
    if (focus !== null) {
      const lit = new Path2D();
      const fi = this.index.get(focus);
      if (fi !== undefined) {
        for (const t of this.nodes.get(focus)?.adjacency ?? []) {
          const j = this.index.get(t);
          if (j === undefined) continue;
          lit.moveTo(sx[fi], sy[fi]);
          lit.lineTo(sx[j], sy[j]);
        }
        for (const o of this.neighbours) {
          const j = this.index.get(o);
          if (j === undefined || !this.nodes.get(o)?.adjacency.includes(focus)) continue;
          lit.moveTo(sx[j], sy[j]);
          lit.lineTo(sx[fi], sy[fi]);
        }
      }
      ctx.lineWidth = 2;
      ctx.strokeStyle = '#2a6fdb';
      ctx.stroke(lit);
    }

    // Nodes, batched by shape, colour and dimming.
    const batches = new Map<string, Path2D>();
    const rings = new Path2D(), matchRings = new Path2D(), multiRings = new Path2D(), pseudoOutline = new Path2D();
    for (let i = 0; i < n; i++) {
      if (!visible[i]) continue;
      const node = this.nodes.get(this.ids[i]);
      if (!node) continue;
      const r = Math.max(1.5, this.radius(node) * k);
      const key = `${colourOf(node)}|${dimmed(node.id) ? 1 : 0}`;
      let p = batches.get(key);
      if (!p) batches.set(key, (p = new Path2D()));
      shape(p, node.pseudo ? 'cloud' : node.shape, sx[i], sy[i], r);
      if (node.pseudo) shape(pseudoOutline, 'cloud', sx[i], sy[i], r);
      if (node.id === this.selected) shape(rings, node.shape, sx[i], sy[i], r + 4);
      if (this.multi.has(node.id)) shape(multiRings, node.shape, sx[i], sy[i], r + 6);
      if (this.matches?.has(node.id)) shape(matchRings, node.shape, sx[i], sy[i], r + 3);
    }
    for (const [key, p] of batches) {
      const [colour, dim] = key.split('|');
      ctx.globalAlpha = dim === '1' ? 0.18 : 1;
      ctx.fillStyle = colour;
      ctx.fill(p);
    }
    ctx.globalAlpha = 1;
    ctx.setLineDash([3, 3]);
    ctx.lineWidth = 1;
    ctx.strokeStyle = '#8a929c';
    ctx.stroke(pseudoOutline);
    ctx.lineWidth = 2;
    ctx.strokeStyle = '#2a6fdb';
    ctx.stroke(multiRings);
    ctx.setLineDash([]);
    ctx.strokeStyle = '#f2b705';
    ctx.lineWidth = 3;
    ctx.stroke(matchRings);
    ctx.strokeStyle = '#1d2733';
    ctx.lineWidth = 2.5;
    ctx.stroke(rings);

    // Labels where they can be read.
    if (BASE_R * k >= 7 && onScreen <= 1500) {
      ctx.textAlign = 'center';
      ctx.textBaseline = 'top';
      // As many characters as fit a grid cell's width (~6.5 px each).
      const chars = Math.max(4, Math.floor((110 * k) / 6.5));
      for (let i = 0; i < n; i++) {
        if (!visible[i]) continue;
        const node = this.nodes.get(this.ids[i]);
        if (!node) continue;
        const r = this.radius(node) * k;
        ctx.globalAlpha = dimmed(node.id) ? 0.25 : 1;
        ctx.font = '600 12px system-ui, sans-serif';
        ctx.fillStyle = '#1d2733';
        ctx.fillText(clip(node.label, Math.min(28, chars)), sx[i], sy[i] + r + 4);
        if (node.labelMinor && BASE_R * k >= 10) {
          ctx.font = '11px system-ui, sans-serif';
          ctx.fillStyle = '#6b7580';
          ctx.fillText(clip(node.labelMinor, Math.min(32, chars + 2)), sx[i], sy[i] + r + 18);
        }
      }
      ctx.globalAlpha = 1;
    }
    this.stats.frames++;
    this.stats.nodesDrawn = n;
    this.stats.lastFrameMs = performance.now() - t0;
    this.stats.drawMs += this.stats.lastFrameMs;
    if (!this.stats.firstFrameAt) this.stats.firstFrameAt = performance.now();
    // The first frame that holds every node of the view.
    if (!this.stats.firstCompleteAt && n === this.nodes.size) this.stats.firstCompleteAt = performance.now();
    this.canvas.dataset.nodes = String(n);
  }
}

function clip(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** Adds a node outline to `p`: Scope's shapes (process square, container
 * hexagon, host circle, pod heptagon, service and pseudo cloud). */
function shape(p: Path2D, kind: string, x: number, y: number, r: number): void {
  // Too small to tell shapes apart: a square is the cheapest to fill.
  if (r < 3) {
    p.rect(x - r, y - r, 2 * r, 2 * r);
    return;
  }
  switch (kind) {
    case 'square': {
      const s = r * 0.85;
      p.moveTo(x - s, y - s);
      p.rect(x - s, y - s, 2 * s, 2 * s);
      return;
    }
    case 'hexagon':
      polygon(p, x, y, r, 6, 0);
      return;
    case 'heptagon':
      polygon(p, x, y, r, 7, -Math.PI / 2);
      return;
    case 'cloud':
      p.moveTo(x + r * 0.55 + r * 0.5, y + r * 0.1);
      p.arc(x + r * 0.55, y + r * 0.1, r * 0.5, 0, Math.PI * 2);
      p.moveTo(x - r * 0.55 + r * 0.5, y + r * 0.1);
      p.arc(x - r * 0.55, y + r * 0.1, r * 0.5, 0, Math.PI * 2);
      p.moveTo(x + r * 0.65, y - r * 0.15);
      p.arc(x, y - r * 0.15, r * 0.65, 0, Math.PI * 2);
      return;
    default:
      p.moveTo(x + r, y);
      p.arc(x, y, r, 0, Math.PI * 2);
  }
}

// Outlines end with a line back to their start, not closePath(), which
// costs time in proportion to the whole path in Chromium (quadratic over
// 10,000 nodes in one path).
function polygon(p: Path2D, x: number, y: number, r: number, sides: number, start: number): void {
  for (let i = 0; i <= sides; i++) {
    const a = start + (i * 2 * Math.PI) / sides;
    const px = x + r * Math.cos(a), py = y + r * Math.sin(a);
    if (i === 0) p.moveTo(px, py);
    else p.lineTo(px, py);
  }
}
