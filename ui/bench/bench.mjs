// The UI benchmark: a real app server (release build) fed over HTTP by the
// synthetic cluster's probes (`synthetic-probes`), measured in headless
// Chromium. Each figure is the median of repeated runs (min and max shown).
//
//   cargo build --release --example app-server --example synthetic-probes
//   cd ui && npm ci && npm run bench        # or: node bench/bench.mjs [--runs 5] [--quick]
//
// Scenarios (the targets in brackets):
//   medium: 100 hosts, 1,000 containers, 10,000 processes, 20,000 connections
//     - containers graph: navigation → first frame holding every node [≤ 1 s]
//     - a diff of ~100 changed nodes: main-thread time to parse, apply and draw [≤ 50 ms]
//   large: 1,000 hosts, 10,000 containers, 100,000 processes, 200,000 connections
//     - containers graph: navigation → first complete frame [≤ 3 s]
//     - panning and zooming that graph: frames per second [≥ 30]
//     - JS heap at the containers view
//     - processes view (auto: a table): longest main-thread task while loading,
//       sorting and scrolling [no long task over 200 ms]

import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const target = resolve(here, '../../target');
const argv = process.argv.slice(2);
const RUNS = Number(argv[argv.indexOf('--runs') + 1]) || 5;
const QUICK = argv.includes('--quick');
const APP = process.env.ORCH_UI_APP_BIN || join(target, 'release/examples/app-server');
const PROBES = process.env.ORCH_UI_SYNTHETIC_BIN || join(target, 'release/examples/synthetic-probes');
const CHROMIUM = process.env.ORCH_CHROMIUM || '/usr/bin/chromium';
const children = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const freePort = () =>
  new Promise((res) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => res(p));
    });
  });

function start(bin, args) {
  const c = spawn(bin, args, { detached: true, stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, RUST_LOG: 'warn' } });
  children.push(c);
  return c;
}

function stopAll() {
  for (const c of children.splice(0)) {
    try {
      process.kill(-c.pid, 'SIGKILL');
    } catch {
      // Gone.
    }
  }
}
process.on('exit', stopAll);
process.on('SIGINT', () => process.exit(130));

async function until(what, ms, check) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await check().catch(() => null);
    if (v) return v;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function lineFrom(child, prefix) {
  return new Promise((res, rej) => {
    let buf = '';
    const exit = (code) => rej(new Error(`exited with ${code} before "${prefix}"`));
    const on = (d) => {
      buf += d;
      const line = buf.split('\n').find((l) => l.startsWith(prefix));
      if (line) {
        child.stdout.off('data', on);
        child.off('exit', exit);
        res(line);
      }
    };
    child.stdout.on('data', on);
    child.once('exit', exit);
  });
}

async function cluster(spec) {
  stopAll();
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  start(APP, ['--host', '127.0.0.1', '--port', String(port), '--window', '10m', '--stale-node-threshold', '20m']);
  await until('the app server', 20_000, async () => (await fetch(`${base}/health`)).ok);
  const probes = start(PROBES, ['--app', base, ...Object.entries(spec).flatMap(([k, v]) => [`--${k}`, String(v)])]);
  await lineFrom(probes, 'ready');
  return { base, probes };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const summary = (xs) => ({ median: +median(xs).toFixed(1), min: +Math.min(...xs).toFixed(1), max: +Math.max(...xs).toFixed(1), runs: xs.length });

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-sync', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
});

async function open(base, query) {
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await ctx.newPage();
  await page.addInitScript(() => {
    window.__longTasks = [];
    new PerformanceObserver((l) => {
      for (const e of l.getEntries()) window.__longTasks.push(e.duration);
    }).observe({ type: 'longtask', buffered: true });
  });
  await page.goto(`${base}/?${query}`);
  return page;
}

async function firstComplete(base, query, size) {
  const page = await open(base, query);
  const at = await until('a complete frame', 60_000, () =>
    page.evaluate((size) => {
      const o = window.__orch;
      return o && o.model.size >= size && o.graph.firstCompleteAt > 0 && o.graph.nodesDrawn === o.model.size ? o.graph.firstCompleteAt : null;
    }, size),
  );
  return { page, at };
}

/** The containers view's size, then `runs` fresh pages timed to their first
 * complete frame; the last page stays open for what comes next. */
async function containersFirstFrames(base, runs) {
  const size = Object.keys((await (await fetch(`${base}/api/topology/containers`)).json()).nodes).length;
  const times = [];
  let page;
  for (let i = 0; i < runs; i++) {
    const r = await firstComplete(base, 'view=containers&mode=graph', size);
    times.push(r.at);
    if (i < runs - 1) await r.page.context().close();
    else page = r.page;
  }
  return { size, times, page };
}

const results = {};
const report = (name, value, unit, targetText) => {
  results[name] = { ...value, unit, target: targetText };
  console.log(`${name.padEnd(44)} median ${String(value.median).padStart(8)} ${unit}  (min ${value.min}, max ${value.max}, ${value.runs} runs)  target ${targetText}`);
};

// ------------------------------------------------------------- medium
{
  const { base, probes } = await cluster({ hosts: 100, containers: 1000, processes: 10000, connections: 20000 });
  const { size, times, page } = await containersFirstFrames(base, RUNS);
  console.log(`medium cluster: containers view has ${size} nodes`);
  report('medium/containers_graph_first_complete_frame', summary(times), 'ms', '≤ 1000 ms');
  await page.waitForFunction(() => document.body.dataset.layout === 'settled', null, { timeout: 60_000 });
  const diffs = [];
  const changed = [];
  for (let i = 0; i < (QUICK ? 3 : 10); i++) {
    const before = await page.evaluate(() => ({ ...window.__orch.live, draw: window.__orch.graph.drawMs }));
    probes.stdin.write('round 10\n');
    await lineFrom(probes, 'posted');
    await until('the diff', 10_000, () => page.evaluate((b) => window.__orch.live.messages > b.messages, before));
    await sleep(400); // the rest of the round's diffs and their frames
    const after = await page.evaluate(() => ({ ...window.__orch.live, draw: window.__orch.graph.drawMs }));
    diffs.push(after.messageMs - before.messageMs + (after.draw - before.draw));
    changed.push(after.updated - before.updated);
  }
  console.log(`  diffs carried ${median(changed)} changed nodes (median)`);
  report('medium/diff_100_nodes_main_thread', summary(diffs), 'ms', '≤ 50 ms');
  await page.context().close();
}

// ------------------------------------------------------------- large
if (!QUICK) {
  const { base } = await cluster({ hosts: 1000, containers: 10000, processes: 100000, connections: 200000 });
  const { size, times, page } = await containersFirstFrames(base, Math.max(3, Math.ceil(RUNS / 2)));
  console.log(`large cluster: containers view has ${size} nodes`);
  report('large/containers_graph_first_complete_frame', summary(times), 'ms', '≤ 3000 ms');
  await page.waitForFunction(() => document.body.dataset.layout === 'settled', null, { timeout: 120_000 });
  const fps = [[], [], [], []];
  // One pan and one zoom to warm up (as criterion warms up), then three of each.
  for (let i = 0; i < 8; i++) {
    fps[i < 2 ? 2 + i : i % 2].push(
      await page.evaluate(async (i) => {
        const frames = 60;
        const g = window.__orch;
        const drawnBefore = g.graph.frames;
        const started = performance.now();
        for (let f = 0; f < frames; f++) {
          if (i % 2) g.zoomBy(f < frames / 2 ? 1.02 : 1 / 1.02);
          else g.panBy(f < frames / 2 ? 6 : -6, 3);
          // The page's own frame callback (registered first) draws the step;
          // ours runs after it in the same frame.
          await new Promise((r) => requestAnimationFrame(r));
        }
        // Every step must have been drawn for the rate to count.
        if (g.graph.frames - drawnBefore < frames) throw new Error('steps were not drawn');
        return (frames * 1000) / (performance.now() - started);
      }, i),
    );
  }
  report('large/containers_graph_pan_fps', summary(fps[0]), 'frames/s', '≥ 30');
  report('large/containers_graph_zoom_fps', summary(fps[1]), 'frames/s', '≥ 30');
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('HeapProfiler.collectGarbage');
  await cdp.send('Performance.enable');
  const { metrics } = await cdp.send('Performance.getMetrics');
  const heap = metrics.find((m) => m.name === 'JSHeapUsedSize').value / 2 ** 20;
  report('large/containers_view_js_heap', summary([heap]), 'MiB', 'reported');
  await page.context().close();

  const procs = Object.keys((await (await fetch(`${base}/api/topology/processes`)).json()).nodes).length;
  console.log(`large cluster: processes view has ${procs} nodes`);
  const worst = [];
  const loads = [];
  for (let i = 0; i < 3; i++) {
    const p = await open(base, 'view=processes');
    const at = await until('the processes table', 120_000, () =>
      p.evaluate((n) => (window.__orch?.model.size >= n && window.__orch.mode() === 'table' && Number(document.querySelector('#table').dataset.rows) === window.__orch.model.size ? performance.now() : null), procs),
    );
    loads.push(at);
    await p.click('.thead button[data-col="cpu"]');
    await p.click('.thead button[data-col="label"]');
    for (let s = 0; s < 10; s++) {
      await p.mouse.move(700, 500);
      await p.mouse.wheel(0, 2000);
      await sleep(30);
    }
    await sleep(500);
    worst.push(await p.evaluate(() => Math.max(0, ...window.__longTasks)));
    await p.context().close();
  }
  report('large/processes_table_ready', summary(loads), 'ms', 'reported');
  report('large/processes_longest_task', summary(worst), 'ms', '≤ 200 ms');
}

await browser.close();
stopAll();
mkdirSync(target, { recursive: true });
writeFileSync(join(target, 'ui-bench.json'), JSON.stringify(results, null, 2));
console.log(`results in ${join(target, 'ui-bench.json')}`);
