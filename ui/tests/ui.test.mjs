// The web UI in real Chromium against a real app server fed by a real probe
// of this host, with busybox containers on the harness's dockerd.
//
//   ORCH_UI_APP_BIN=…/app-server ORCH_UI_PROBE_BIN=…/probe \
//   ORCH_TEST_DOCKER_HOST=unix:///…/docker.sock ORCH_TEST_BUSYBOX_IMAGE=orchestrator-busybox:test \
//   node --test ui/tests/ui.test.mjs
//
// orchestrator-topology's `ui` integration test runs it with the example
// binaries. Servers bind to 127.0.0.1, run in process groups of their own
// and are killed by PID at the end; containers are removed.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const env = process.env;
const APP_BIN = env.ORCH_UI_APP_BIN;
const PROBE_BIN = env.ORCH_UI_PROBE_BIN;
const DOCKER = env.ORCH_TEST_DOCKER_HOST;
const IMAGE = env.ORCH_TEST_BUSYBOX_IMAGE;
const DOCKER_CLI = env.ORCH_DOCKER_CLI || '/usr/bin/docker';
const CHROMIUM = env.ORCH_CHROMIUM || '/usr/bin/chromium';
const SHOTS = resolve(env.ORCH_UI_SCREENSHOTS || join(here, '../../target/ui-screenshots'));
for (const [k, v] of Object.entries({ ORCH_UI_APP_BIN: APP_BIN, ORCH_UI_PROBE_BIN: PROBE_BIN, ORCH_TEST_DOCKER_HOST: DOCKER, ORCH_TEST_BUSYBOX_IMAGE: IMAGE })) {
  if (!v) throw new Error(`${k} is not set`);
}

const TOKENS = { probe: 'ui-probe-token', viewer: 'ui-viewer-token', operator: 'ui-operator-token', admin: 'ui-admin-token' };
const tag = `${process.pid}-${Math.random().toString(36).slice(2, 7)}`;
const dir = mkdtempSync(join(tmpdir(), 'orch-ui-'));
const children = new Set();
const containers = [];
let port = 0;
let base = '';
let app = null;
let browser = null;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, ms, check) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(200);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => res(p));
    });
    s.on('error', rej);
  });
}

function start(bin, args, name) {
  const child = spawn(bin, args, { detached: true, stdio: ['ignore', 'ignore', 'pipe'], env: { ...env, RUST_LOG: 'warn' } });
  let err = '';
  child.stderr.on('data', (d) => {
    err = (err + d).slice(-4000);
  });
  child.tail = () => `${name}: ${err}`;
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

function killGroup(child, signal = 'SIGKILL') {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Gone already.
  }
}

async function startApp() {
  app = start(APP_BIN, ['--host', '127.0.0.1', '--port', String(port), '--tokens', join(dir, 'tokens'), '--audit-log', join(dir, 'audit.log'), '--data-dir', join(dir, 'data')], 'app-server');
  await until('the app server', 20_000, async () => (await fetch(`${base}/health`)).ok);
}

async function get(path, token = TOKENS.admin) {
  const r = await fetch(`${base}${path}`, { headers: { Authorization: `Bearer ${token}` } });
  if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
  return r.json();
}

function docker(...args) {
  return execFileSync(DOCKER_CLI, ['-H', DOCKER, ...args], { encoding: 'utf8' }).trim();
}

function runContainer(name, ...cmd) {
  const id = docker('run', '-d', '--name', name, '--network', 'host', '--label', 'app=ui-test', IMAGE, ...cmd);
  containers.push(name);
  return id;
}

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  mkdirSync(join(dir, 'data'), { recursive: true });
  writeFileSync(join(dir, 'tokens'), Object.entries(TOKENS).map(([role, t]) => `${t} ${role} ${role}-user`).join('\n'));
  port = await freePort();
  base = `http://127.0.0.1:${port}`;
  await startApp();
  start(PROBE_BIN, ['--app', base, '--token', TOKENS.probe, '--spy-interval', '1s', '--publish-interval', '1s', '--docker-host', DOCKER], 'probe');
  runContainer(`ui-ticker-${tag}`, 'sh', '-c', 'while true; do echo tick-$(date +%s); sleep 1; done');
  runContainer(`ui-shell-${tag}`, 'sleep', '3600');
  runContainer(`ui-bulk1-${tag}`, 'sleep', '3600');
  runContainer(`ui-bulk2-${tag}`, 'sleep', '3600');
  await until('the probe to report the containers', 60_000, async () => {
    const v = await get('/api/topology/containers');
    return Object.values(v.nodes).filter((n) => n.label.endsWith(tag)).length === 4;
  });
  await until("the probe's control socket", 30_000, async () => (await get('/api/v1/agents/list')).agents.some((a) => a.control_socket));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-sync', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
});

after(async () => {
  await browser?.close().catch(() => {});
  for (const c of children) killGroup(c);
  for (const name of containers) {
    try {
      docker('rm', '-f', name);
    } catch {
      // Already gone.
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

/** A signed-in page; `errors` collects console errors and page crashes. */
async function page(token = TOKENS.operator, url = base) {
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const p = await ctx.newPage();
  p.errors = [];
  p.on('console', (m) => m.type() === 'error' && p.errors.push(m.text()));
  p.on('pageerror', (e) => p.errors.push(String(e)));
  await p.goto(base);
  await p.fill('#token', token);
  await p.click('#login-form button[type=submit]');
  await p.waitForSelector('#login', { state: 'hidden' });
  if (url !== base) await p.goto(url);
  await p.waitForFunction(() => document.querySelector('#conn')?.dataset.state === 'live');
  return p;
}

const model = (p) => p.evaluate(() => [...window.__orch.model.values()].map((n) => ({ id: n.id, label: n.label, probe: n.probe })));

async function nodeId(p, label) {
  return until(`node ${label} in the page`, 30_000, async () => (await model(p)).find((n) => n.label === label)?.id);
}

async function clickNode(p, id) {
  await until(`node ${id} laid out`, 20_000, () => p.evaluate((id) => window.__orch.screenOf(id) !== null, id));
  await p.evaluate(() => window.__orch.fitNow());
  await sleep(100);
  const at = await p.evaluate((id) => window.__orch.screenOf(id), id);
  const box = await p.locator('#graph').boundingBox();
  await p.mouse.click(box.x + at.x, box.y + at.y);
  // The panel shows this node (not the one it showed before).
  const label = await p.evaluate((id) => window.__orch.model.get(id).label, id);
  await p.waitForFunction((label) => document.querySelector('#details .dhead h2')?.textContent === label, label);
  await p.waitForSelector('#details section');
}

test('the login form refuses a wrong token and a viewer sees no controls', async () => {
  const ctx = await browser.newContext();
  const p = await ctx.newPage();
  await p.goto(base);
  await p.waitForSelector('#login:not([hidden])');
  await p.fill('#token', 'not-a-token-at-all');
  await p.click('#login-form button[type=submit]');
  await p.waitForFunction(() => document.querySelector('#login-error').textContent.includes('not known'));
  await ctx.close();

  const v = await page(TOKENS.viewer);
  const id = await nodeId(v, `ui-shell-${tag}`);
  await clickNode(v, id);
  await v.waitForSelector('#details section h3');
  assert.equal(await v.locator('#details [data-control]').count(), 0, 'a viewer has no control buttons');
  assert.equal(await v.locator('#save-filter').isVisible(), false);
  await v.context().close();
});

test('every view draws as many nodes as its API answer has, with no console error', async () => {
  const p = await page();
  const views = await get('/api/topology');
  for (const view of views) {
    await p.click(`#views a[data-view="${view.id}"]`);
    // The page follows the live view; the API and the page agree once both
    // have the same generation, so compare until they do.
    const drawn = await until(`${view.id} drawn as the API answers`, 30_000, async () => {
      const api = Object.keys((await get(`/api/topology/${view.id}`)).nodes).length;
      const shown = await p.evaluate(() => {
        const o = window.__orch;
        return o.mode() === 'graph' ? Number(document.querySelector('#graph').dataset.nodes ?? 0) * (o.model.size ? 1 : 0) : Number(document.querySelector('#table').dataset.rows ?? -1);
      });
      const size = await p.evaluate(() => window.__orch.model.size);
      return api === shown && size === api ? { api } : null;
    });
    if (drawn.api === 0) {
      await p.waitForSelector('#empty:not([hidden])');
      assert.match(await p.textContent('#empty'), /Nothing to show|filtered|No probes/);
    }
    await p.waitForFunction(() => document.body.dataset.layout === 'settled' || window.__orch.mode() === 'table', null, { timeout: 30_000 });
    await p.screenshot({ path: join(SHOTS, `${view.id}.png`) });
  }
  assert.deepEqual(p.errors, []);
  await p.context().close();
});

test('a new container appears live; its panel has sparklines; stopping it with the button removes it and is audited', async () => {
  const p = await page();
  await nodeId(p, `ui-shell-${tag}`);
  await p.waitForFunction(() => document.body.dataset.layout === 'settled', null, { timeout: 30_000 });
  const before = await p.evaluate(() => window.__orch.positions());
  const name = `ui-late-${tag}`;
  runContainer(name, 'sleep', '3600');
  const id = await nodeId(p, name);
  // Nothing jumps on a diff: what was placed stays where it was.
  await p.waitForFunction((id) => document.body.dataset.layout === 'settled' && window.__orch.screenOf(id) !== null, id, { timeout: 30_000 });
  const afterAdd = await p.evaluate(() => window.__orch.positions());
  for (const [k, [x, y]] of Object.entries(before)) {
    if (afterAdd[k]) assert.ok(Math.hypot(afterAdd[k][0] - x, afterAdd[k][1] - y) < 0.5, `${k} moved from ${[x, y]} to ${afterAdd[k]}`);
  }
  await clickNode(p, id);
  await p.waitForSelector('#details .spark svg');
  await until('a sparkline with points', 30_000, async () => {
    const counts = await p.$$eval('#details .spark svg', (s) => s.map((x) => Number(x.dataset.points)));
    return counts.some((c) => c > 0);
  });
  await p.click('#details [data-control="docker_stop_container"]');
  await p.click('#details [data-control="docker_stop_container"]'); // confirm
  await p.waitForFunction(() => document.querySelector('#details .result')?.textContent.includes('done'), null, { timeout: 30_000 });
  await until('the stopped container to leave the view', 30_000, async () => !(await model(p)).some((n) => n.id === id));
  const audit = await get('/api/audit', TOKENS.admin);
  assert.ok(audit.entries.some((e) => e.control === 'docker_stop_container' && e.node === id && e.ok && e.who === 'operator-user'), JSON.stringify(audit));
  await p.context().close();
});

test('a search narrows the graph, and the copied URL opens the same view, query and node', async () => {
  const p = await page();
  await p.click('#views a[data-view="containers"]');
  await nodeId(p, `ui-shell-${tag}`);
  const before = (await model(p)).length;
  await p.fill('#q', `ui-shell-${tag}`);
  await p.press('#q', 'Enter');
  await until('the graph narrowed to one node', 20_000, async () => {
    const m = await model(p);
    return m.length === 1 && m[0].label === `ui-shell-${tag}`;
  });
  assert.ok(before > 1, `${before} nodes before the search`);
  const id = (await model(p))[0].id;
  await clickNode(p, id);
  const url = p.url();
  assert.match(url, /q=ui-shell/);
  assert.match(url, /node=/);
  const q = await page(TOKENS.operator, url);
  await q.waitForSelector('#details .dhead h2');
  assert.equal(await q.textContent('#details .dhead h2'), `ui-shell-${tag}`);
  assert.equal(await q.inputValue('#q'), `ui-shell-${tag}`);
  assert.equal(await q.getAttribute('#views a.active', 'data-view'), 'containers');
  await until('the narrowed view', 20_000, async () => (await model(q)).length === 1);
  // An unknown node in a URL says so.
  await q.goto(`${base}/?view=containers&node=no-such-node`);
  await q.waitForSelector('#details .not-found');
  await p.context().close();
  await q.context().close();
});

test('logs follow in the panel and a shell in a busybox container echoes what is typed', async () => {
  const p = await page();
  await clickNode(p, await nodeId(p, `ui-ticker-${tag}`));
  await p.click('#details [data-control="docker_logs"]');
  await p.waitForFunction(() => /tick-\d+/.test(document.querySelector('#details pre.log')?.textContent ?? ''), null, { timeout: 20_000 });
  await p.click('#details .pipe button');
  await clickNode(p, await nodeId(p, `ui-shell-${tag}`));
  await p.click('#details [data-control="docker_exec_container"]');
  await p.waitForSelector('#details .xterm-holder .xterm');
  await until('the terminal attached', 20_000, async () => {
    const status = await p.evaluate(() => document.querySelector('#details .pipe p')?.textContent ?? '');
    if (status && status !== 'attaching…' && status !== 'attached') throw new Error(`terminal: ${status}`);
    return status === 'attached';
  });
  // Type once the shell shows its prompt: a shell setting up its
  // terminal may drop what was typed before (under load it starts late).
  await until('the shell prompt', 30_000, async () => {
    const text = await p.evaluate(() => document.querySelector('#details .xterm-rows')?.textContent ?? '');
    return /[#$]\s*$/.test(text.trimEnd() + ' ') || /[#$] /.test(text);
  });
  const word = `hello-${Math.random().toString(36).slice(2, 9)}`;
  await p.click('#details .xterm-holder');
  await p.keyboard.type(`echo ${word}\n`, { delay: 10 });
  await until('the echo on the terminal screen', 45_000, async () => {
    const text = await p.evaluate(() => document.querySelector('#details .xterm-rows')?.textContent ?? '');
    // The typed line and the output line.
    return text.split(word).length - 1 >= 2;
  });
  await p.screenshot({ path: join(SHOTS, 'terminal.png') });
  await p.context().close();
});

test('a bulk stop of two containers gives two results', async () => {
  const p = await page(TOKENS.operator, `${base}/?view=containers&mode=table`);
  const ids = [await nodeId(p, `ui-bulk1-${tag}`), await nodeId(p, `ui-bulk2-${tag}`)];
  for (const id of ids) {
    await p.fill('#q', '');
    await p.locator(`.tr[data-id="${id}"] input[type=checkbox]`).check();
  }
  await p.click('#bulk [data-control="docker_stop_container"]');
  await p.click('#bulk [data-control="docker_stop_container"]'); // confirm
  // `sleep` as PID 1 ignores SIGTERM: each stop takes docker's full 10 s
  // grace; under the whole suite's load two can take longer than 30 s.
  await p.waitForSelector('#bulk .results li', { timeout: 60_000 });
  const results = await p.$$eval('#bulk .results li', (l) => l.map((x) => ({ id: x.dataset.id, cls: x.className })));
  assert.equal(results.length, 2, JSON.stringify(results));
  assert.ok(results.every((r) => r.cls === 'ok'), JSON.stringify(results));
  assert.deepEqual(results.map((r) => r.id).sort(), [...ids].sort());
  for (const name of [`ui-bulk1-${tag}`, `ui-bulk2-${tag}`]) assert.equal(docker('inspect', '-f', '{{.State.Status}}', name), 'exited');
  await p.context().close();
});

test('a dead app server shows the disconnected state and the page recovers when it is back', async () => {
  const p = await page();
  await nodeId(p, `ui-shell-${tag}`);
  killGroup(app);
  await until('the app server to die', 10_000, async () => app.exitCode !== null || app.signalCode !== null);
  await p.waitForFunction(() => document.querySelector('#conn').dataset.state === 'disconnected', null, { timeout: 20_000 });
  await p.waitForSelector('#banner:not([hidden])');
  assert.match(await p.textContent('#banner'), /Disconnected/);
  assert.ok(await p.locator('#graph').isVisible(), 'the last picture stays');
  await startApp();
  await p.waitForFunction(() => document.querySelector('#conn').dataset.state === 'live', null, { timeout: 40_000 });
  await nodeId(p, `ui-shell-${tag}`);
  await p.waitForSelector('#banner', { state: 'hidden', timeout: 20_000 });
  await p.context().close();
});

test('over TLS the page signs in and follows the view over wss, and an app without probes says so', async () => {
  const tls = join(dir, 'tls');
  mkdirSync(tls, { recursive: true });
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(tls, 'key.pem'), '-out', join(tls, 'cert.pem')], { stdio: 'ignore' });
  const tlsPort = await freePort();
  start(APP_BIN, ['--host', '127.0.0.1', '--port', String(tlsPort), '--tokens', join(dir, 'tokens'), '--tls-cert', join(tls, 'cert.pem'), '--tls-key', join(tls, 'key.pem')], 'tls app-server');
  const url = `https://127.0.0.1:${tlsPort}`;
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
  const p = await ctx.newPage();
  await until('the TLS app server', 20_000, async () => {
    try {
      await p.goto(url);
      return true;
    } catch {
      return false;
    }
  });
  await p.fill('#token', TOKENS.viewer);
  await p.click('#login-form button[type=submit]');
  await p.waitForFunction(() => document.querySelector('#conn')?.dataset.state === 'live', null, { timeout: 20_000 });
  await p.waitForSelector('#empty:not([hidden])');
  assert.equal(await p.getAttribute('#empty', 'data-reason'), 'no-probes');
  await ctx.close();
});

