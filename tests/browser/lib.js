// Helpers for the browser tests: temp apps, freshet and redis-server processes on free ports of
// 127.0.0.1 (signalled only by their own PIDs), HTTP publishing, and Debian's Chromium through
// playwright-core. Node's standard library plus playwright-core only.
'use strict';

const assert = require('assert');
const childProcess = require('child_process');
const fs = require('fs');
const http = require('http');
const net = require('net');
const os = require('os');
const path = require('path');

const HERE = __dirname;
const ROOT = process.env.FRESHET_ROOT || path.resolve(HERE, '..', '..');
const BIN = process.env.FRESHET_BIN || path.join(ROOT, 'build', 'freshet');
const HOST = '127.0.0.1';
const CHROMIUM = process.env.FRESHET_CHROMIUM || '/usr/bin/chromium';
// Headless, no sandbox (tests may run as root), and nothing that would reach outside 127.0.0.1.
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
  '--no-first-run', '--disable-background-networking', '--disable-component-update',
  '--disable-sync'];
// The server under ASan is several times slower to start and answer.
const SLOW = process.env.FRESHET_SANITIZED === '1' ? 3 : 1;

const cleanups = [];

function onCleanup(fn) { cleanups.push(fn); }

// Runs (newest first) the cleanups registered after `mark` (cleanups.length at some earlier
// point): one test's servers, pages and temp dirs go when that test ends.
async function cleanupFrom(mark) {
  while (cleanups.length > (mark || 0)) {
    const fn = cleanups.pop();
    try { await fn(); } catch (e) { console.error('cleanup: ' + (e && e.stack || e)); }
  }
}

function cleanupMark() { return cleanups.length; }

function cleanupAll() { return cleanupFrom(0); }

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

async function waitFor(what, fn, timeoutMs, everyMs) {
  const deadline = Date.now() + timeoutMs * SLOW;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error('timed out after ' + timeoutMs * SLOW + ' ms waiting for ' + what +
                      (last instanceof Error ? ': ' + last.message : ''));
    }
    await sleep(everyMs || 50);
  }
}

function tempDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix || 'freshet-browser-'));
  onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// Ports below the ephemeral range, so that client sockets of tests running in parallel cannot
// be holding the one chosen (the same rule as tests/integration/frtest.py).
function ephemeralLow() {
  try {
    return Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  } catch (e) {
    return 32768;
  }
}

function portIsFree(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, HOST, () => srv.close(() => resolve(true)));
  });
}

async function freePort() {
  const lo = ephemeralLow();
  const [low, high] = lo > 12000 ? [10000, lo] : [1024, 65535];
  for (let i = 0; i < 200; i++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (await portIsFree(port)) return port;
  }
  throw new Error('no free port found');
}

// Dedents an inline script so its first line is line 1 of the file.
function dedent(text) {
  const lines = text.replace(/^\n/, '').split('\n');
  const indent = Math.min(...lines.filter((l) => l.trim()).map((l) => l.match(/^ */)[0].length));
  return lines.map((l) => l.slice(indent)).join('\n');
}

// A temp dir holding app.lua, routes and public/ (with the test page), written from strings.
function writeApp(files) {
  const dir = tempDir('freshet-browser-app-');
  const all = Object.assign({ 'public/index.html': fs.readFileSync(path.join(HERE, 'page.html')) }, files);
  for (const rel of Object.keys(all)) {
    const full = path.join(dir, rel);
    fs.mkdirSync(path.dirname(full), { recursive: true });
    const content = all[rel];
    fs.writeFileSync(full, Buffer.isBuffer(content) ? content : dedent(content));
  }
  return { dir: dir, app: path.join(dir, 'app.lua') };
}

// One freshet process. start() again after kill() restarts it on the same port (a restart).
class Freshet {
  constructor(app, opts) {
    this.app = app;
    this.opts = opts || {};
    this.port = this.opts.port || null;
    this.proc = null;
    this.log = '';
    onCleanup(() => this.stop());
  }

  get url() { return 'http://' + HOST + ':' + this.port; }

  async start() {
    if (!fs.existsSync(BIN)) throw new Error('freshet binary not found at ' + BIN + ' (build it first)');
    if (!this.port) this.port = await freePort();
    // A restart right after a kill may find the port held a moment longer: try again briefly.
    const deadline = Date.now() + 5000 * SLOW;
    for (;;) {
      const proc = this._spawn();
      try {
        await waitFor('freshet to listen on ' + this.port, () => {
          if (proc.exitInfo) throw new Error('freshet exited (' + JSON.stringify(proc.exitInfo) + '):\n' + this.tail());
          return this.log.includes('listening on http://' + HOST + ':' + this.port) ||
            this.log.includes('listening on https://' + HOST + ':' + this.port);
        }, 10000);
        return this;
      } catch (e) {
        if (!(proc.exitInfo && /in use/i.test(this.log) && Date.now() < deadline)) throw e;
        await sleep(100);
      }
    }
  }

  _spawn() {
    this.log = '';
    const proc = childProcess.spawn(BIN, [this.app, '--listen', HOST + ':' + this.port],
      { stdio: ['ignore', 'ignore', 'pipe'], env: Object.assign({}, process.env, this.opts.env || {}) });
    this.proc = proc;
    proc.exitInfo = null;
    proc.exited = new Promise((resolve) => proc.on('exit', (code, signal) => {
      proc.exitInfo = { code: code, signal: signal };
      resolve(proc.exitInfo);
    }));
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => { this.log += d; });
    return proc;
  }

  // SIGKILL: no drain, no goodbye to the clients.
  async kill() {
    const proc = this.proc;
    if (!proc || proc.exitInfo) return;
    process.kill(proc.pid, 'SIGKILL');
    await proc.exited;
  }

  // SIGTERM and wait; resolves with the exit status ({code, signal}).
  async stop() {
    const proc = this.proc;
    if (!proc) return null;
    if (proc.exitInfo) return proc.exitInfo;
    process.kill(proc.pid, 'SIGTERM');
    const timer = setTimeout(() => { if (!proc.exitInfo) process.kill(proc.pid, 'SIGKILL'); }, 10000 * SLOW);
    const info = await proc.exited;
    clearTimeout(timer);
    return info;
  }

  // The last lines of the current run's log, without the connection bookkeeping lines that a
  // publisher's requests fill it with.
  tail(n) {
    return this.log.split('\n').filter((l) => !/"event":"(CONNECTING|CLOSED)"/.test(l))
      .slice(-(n || 30)).join('\n');
  }
}

// A redis-server on a free port with its data in a temp dir and no persistence. Fails loudly
// when it is missing or does not answer PING: the Redis test never skips.
class Redis {
  async start() {
    const bin = process.env.FRESHET_REDIS_SERVER || '/usr/bin/redis-server';
    if (!fs.existsSync(bin)) throw new Error('redis-server not found at ' + bin + ' (install the redis-server package)');
    this.dir = tempDir('freshet-browser-redis-');
    this.port = await freePort();
    const proc = childProcess.spawn(bin, ['--port', String(this.port), '--bind', HOST, '--save', '',
      '--appendonly', 'no', '--dir', this.dir, '--daemonize', 'no'],
    { stdio: ['ignore', 'pipe', 'pipe'], cwd: this.dir });
    this.proc = proc;
    this.log = '';
    proc.stdout.on('data', (d) => { this.log += d; });
    proc.stderr.on('data', (d) => { this.log += d; });
    proc.exited = new Promise((resolve) => proc.on('exit', (code, signal) => {
      proc.exitInfo = { code: code, signal: signal };
      resolve(proc.exitInfo);
    }));
    onCleanup(async () => {
      if (!proc.exitInfo) { process.kill(proc.pid, 'SIGKILL'); await proc.exited; }
    });
    await waitFor('redis-server to answer PING on ' + this.port, async () => {
      if (proc.exitInfo) throw new Error('redis-server exited: ' + this.log.slice(-2000));
      return (await this.ping()) === '+PONG';
    }, 10000, 100);
    return this;
  }

  get url() { return 'redis://' + HOST + ':' + this.port; }

  ping() {
    return new Promise((resolve) => {
      const sock = net.connect(this.port, HOST);
      let buf = '';
      sock.setTimeout(1000, () => { sock.destroy(); resolve(null); });
      sock.on('error', () => resolve(null));
      sock.on('connect', () => sock.write('PING\r\n'));
      sock.on('data', (d) => {
        buf += d;
        if (buf.includes('\r\n')) { sock.end(); resolve(buf.trim()); }
      });
    });
  }
}

// One HTTP request without keep-alive: {status, headers, body}; rejects on a socket error.
function request(url, opts) {
  opts = opts || {};
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: opts.method || 'GET',
      headers: Object.assign({ Connection: 'close' }, opts.headers || {}),
      agent: false,
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: body }));
      res.on('error', reject);
    });
    req.setTimeout(opts.timeout || 5000 * SLOW, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    if (opts.body != null) req.write(opts.body);
    req.end();
  });
}

async function publishJSON(url, obj) {
  const res = await request(url, { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(obj) });
  return res;
}

// Publishes {n} to `url` every `everyMs` until stop(); records which publishes the server
// confirmed (201) and which were sent without an answer (the server died meanwhile: the event
// may or may not exist). Failed connects are simply not published.
function publisher(url, everyMs, makeBody) {
  const state = { confirmed: new Map(), unknown: new Set(), failed: 0, n: 0, stopped: false };
  const loop = (async () => {
    while (!state.stopped) {
      const n = ++state.n;
      const body = JSON.stringify(makeBody ? makeBody(n) : { n: n });
      let sent = false;
      try {
        const res = await new Promise((resolve, reject) => {
          const req = http.request(url, { method: 'POST', agent: false,
            headers: { 'Content-Type': 'application/json', Connection: 'close' } }, (r) => {
            let b = '';
            r.setEncoding('utf8');
            r.on('data', (d) => { b += d; });
            r.on('end', () => resolve({ status: r.statusCode, body: b }));
            r.on('error', reject);
          });
          req.on('error', (e) => reject(Object.assign(e, { sent: sent })));
          req.setTimeout(3000 * SLOW, () => req.destroy(new Error('timeout')));
          req.end(body, () => { sent = true; });
        });
        if (res.status === 201) state.confirmed.set(n, JSON.parse(res.body).id);
        else state.failed++;
      } catch (e) {
        if (e.sent && e.code !== 'ECONNREFUSED') state.unknown.add(n);
        else state.failed++;
      }
      await sleep(everyMs);
    }
  })();
  state.stop = async () => { state.stopped = true; await loop; };
  return state;
}

let playwright = null;

async function launchBrowser() {
  if (!playwright) playwright = require('playwright-core');
  if (!fs.existsSync(CHROMIUM)) throw new Error('Chromium not found at ' + CHROMIUM + ' (install the Debian package chromium)');
  const browser = await playwright.chromium.launch({
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
    timeout: 30000,
  });
  onCleanup(() => browser.close());
  return browser;
}

// A page in its own context (its own connection pool: the six-connections-per-host limit of
// HTTP/1.1 is per context), with the page's console and errors kept for failure reports.
async function openPage(browser, url, contextOptions) {
  const context = await browser.newContext(contextOptions || {});
  onCleanup(() => context.close());
  const page = await context.newPage();
  page.consoleLines = [];
  page.on('console', (m) => page.consoleLines.push(m.type() + ': ' + m.text()));
  page.on('pageerror', (e) => page.consoleLines.push('pageerror: ' + e.message));
  if (url) await page.goto(url);
  return page;
}

// The recorder of tests/browser/page.html: connection `name`'s events, states and gaps.
async function rec(page, name) {
  return page.evaluate((n) => {
    const r = window.rec[n];
    const c = window.conns[n];
    return { events: r.events, states: r.states, gaps: r.gaps, messages: r.messages,
             lastEventId: c.lastEventId, transport: c.transport, state: c.state, stats: c.stats };
  }, name);
}

// A long-poll the server never answered was asked again by the client after pollTimeout; say so,
// since it delays delivery (see docs/CLIENT.md, pollTimeout).
function notePollTimeouts(name, r) {
  if (r.stats.pollTimeouts) {
    console.log('    note: ' + name + ': ' + r.stats.pollTimeouts + ' long-poll(s) got no answer and were asked again after pollTimeout');
  }
}

function noDuplicates(list, what) {
  const seen = new Set();
  const dups = [];
  for (const x of list) { if (seen.has(x)) dups.push(x); seen.add(x); }
  assert.deepStrictEqual(dups, [], what + ': delivered twice');
}

module.exports = {
  CHROMIUM, ROOT, BIN, HOST, SLOW, assert, sleep, waitFor, tempDir, freePort, writeApp, Freshet, Redis,
  request, publishJSON, notePollTimeouts, publisher, launchBrowser, openPage, rec, noDuplicates, onCleanup,
  cleanupAll, cleanupFrom, cleanupMark, dedent,
};
