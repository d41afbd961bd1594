// The graph layout, off the main thread so the page never freezes.
//
// Connected nodes settle under a force simulation (d3-force); nodes
// without edges fill a grid below them, each keeping its slot. A diff
// pins every node already placed and lets only the new ones settle, so
// nothing jumps on an update: only what changed moves. A reset lays out
// everything afresh.

import { forceLink, forceManyBody, forceSimulation, forceX, forceY, Simulation, SimulationLinkDatum, SimulationNodeDatum } from 'd3-force';

interface In {
  id: string;
  adj: string[];
}

export type ToWorker =
  | { type: 'reset' }
  | { type: 'diff'; add: In[]; update: In[]; remove: string[] };

export type FromWorker = { type: 'positions'; ids: string[] | null; xy: Float32Array; settled: boolean };

interface N extends SimulationNodeDatum {
  id: string;
  adj: string[];
  slot: number; // grid slot when unconnected, -1 otherwise
}

// Grid cells leave room for a node's two label lines.
const GRID_X = 120;
const GRID_Y = 80;
const nodes = new Map<string, N>();
let order: string[] = [];
let orderChanged = true;
let freeSlots: number[] = [];
let nextSlot = 0;
let gridCols = 0;
let gridTop = 0;
let running = false;
let lastPost = 0;

const sim: Simulation<N, SimulationLinkDatum<N>> = forceSimulation<N>([])
  .stop()
  .alphaMin(0.02)
  .force('charge', forceManyBody<N>().strength(-120).theta(0.9).distanceMax(400))
  .force('link', forceLink<N, SimulationLinkDatum<N>>([]).id((n) => n.id).distance(70).strength(0.4))
  .force('x', forceX<N>(0).strength(0.03))
  .force('y', forceY<N>(0).strength(0.03));

function degreeSets(): Set<string> {
  const connected = new Set<string>();
  for (const n of nodes.values()) {
    for (const t of n.adj) {
      if (t !== n.id && nodes.has(t)) {
        connected.add(n.id);
        connected.add(t);
      }
    }
  }
  return connected;
}

function takeSlot(): number {
  return freeSlots.length ? (freeSlots.pop() as number) : nextSlot++;
}

function placeInGrid(n: N): void {
  const col = n.slot % gridCols;
  const row = Math.floor(n.slot / gridCols);
  n.x = (col - (gridCols - 1) / 2) * GRID_X;
  n.y = gridTop + row * GRID_Y;
  n.fx = n.x;
  n.fy = n.y;
}

function rebuild(fresh: Set<string>, reset: boolean): void {
  const connected = degreeSets();
  const simNodes: N[] = [];
  const links: SimulationLinkDatum<N>[] = [];
  let unconnected = 0;
  for (const n of nodes.values()) if (!connected.has(n.id)) unconnected++;
  if (reset || gridCols === 0) {
    gridCols = Math.max(8, Math.ceil(Math.sqrt(unconnected * 1.2)));
    const c = connected.size;
    gridTop = c ? Math.sqrt(c) * 45 + GRID_Y * 2 : 0;
    freeSlots = [];
    nextSlot = 0;
    for (const n of nodes.values()) n.slot = -1;
  }
  let k = 0;
  for (const n of nodes.values()) {
    if (connected.has(n.id)) {
      if (n.slot >= 0) {
        freeSlots.push(n.slot);
        n.slot = -1;
        n.fx = undefined;
        n.fy = undefined;
      }
      if (n.x === undefined || fresh.has(n.id)) {
        // Near a placed neighbour, else on a spiral around the middle.
        const near = n.adj.map((t) => nodes.get(t)).find((t) => t && t.x !== undefined && !fresh.has(t.id));
        if (near && !reset) {
          n.x = (near.x as number) + (Math.random() - 0.5) * 60;
          n.y = (near.y as number) + (Math.random() - 0.5) * 60;
        } else {
          const r = 12 * Math.sqrt(k + 0.5);
          const a = k * 2.399963;
          n.x = r * Math.cos(a);
          n.y = r * Math.sin(a);
        }
      }
      // On a diff, what was placed stays put.
      if (!reset && !fresh.has(n.id)) {
        n.fx = n.x;
        n.fy = n.y;
      } else {
        n.fx = undefined;
        n.fy = undefined;
      }
      simNodes.push(n);
      k++;
      for (const t of n.adj) if (t !== n.id && connected.has(t)) links.push({ source: n.id, target: t });
    } else {
      if (n.slot < 0) n.slot = takeSlot();
      placeInGrid(n);
    }
  }
  sim.nodes(simNodes);
  (sim.force('link') as ReturnType<typeof forceLink<N, SimulationLinkDatum<N>>>).links(links);
  const moving = reset ? simNodes.length : simNodes.filter((n) => n.fx === undefined).length;
  sim.alpha(moving === 0 ? 0 : reset ? 1 : 0.5);
  if (!running) {
    running = true;
    setTimeout(step, 0);
  }
}

function post(settled: boolean): void {
  const xy = new Float32Array(order.length * 2);
  for (let i = 0; i < order.length; i++) {
    const n = nodes.get(order[i]) as N;
    xy[2 * i] = n.x ?? 0;
    xy[2 * i + 1] = n.y ?? 0;
  }
  const msg: FromWorker = { type: 'positions', ids: orderChanged ? order : null, xy, settled };
  orderChanged = false;
  (self as unknown as Worker).postMessage(msg, [xy.buffer]);
  lastPost = performance.now();
}

function step(): void {
  const started = performance.now();
  // Ticks for ~12 ms, then hand the picture over.
  while (sim.alpha() >= sim.alphaMin() && performance.now() - started < 12) sim.tick();
  const settled = sim.alpha() < sim.alphaMin();
  if (settled || performance.now() - lastPost > 60) post(settled);
  if (settled) {
    running = false;
    // Unpin what was pinned for the last diff; it is placed now.
    for (const n of sim.nodes()) {
      n.fx = undefined;
      n.fy = undefined;
    }
    return;
  }
  setTimeout(step, 0);
}

self.onmessage = (ev: MessageEvent<ToWorker>) => {
  const m = ev.data;
  if (m.type === 'reset') {
    nodes.clear();
    order = [];
    orderChanged = true;
    gridCols = 0;
    sim.nodes([]);
    post(true);
    return;
  }
  const fresh = new Set<string>();
  const wasEmpty = nodes.size === 0;
  for (const id of m.remove) {
    const n = nodes.get(id);
    if (!n) continue;
    if (n.slot >= 0) freeSlots.push(n.slot);
    nodes.delete(id);
    orderChanged = true;
  }
  for (const a of m.add) {
    if (!nodes.has(a.id)) {
      nodes.set(a.id, { id: a.id, adj: a.adj, slot: -1 });
      fresh.add(a.id);
      orderChanged = true;
    } else {
      (nodes.get(a.id) as N).adj = a.adj;
    }
  }
  for (const u of m.update) {
    const n = nodes.get(u.id);
    if (n) n.adj = u.adj;
  }
  if (orderChanged) order = [...nodes.keys()];
  rebuild(fresh, wasEmpty);
  // The first picture goes out at once, before any tick.
  post(sim.alpha() < sim.alphaMin());
};
