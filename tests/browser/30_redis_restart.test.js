// The Redis broker keeps the events when freshet dies. With the pages' freshet killed (SIGKILL)
// and started again on the same port while a publisher keeps publishing (through a second
// freshet on the same Redis, so nothing is refused while the first is down), each transport
// resumes from its last id and the page ends with every published event, none twice, no gap.
'use strict';

const lib = require('./lib');
const { assert } = lib;
const { app } = require('./20_memory_restart.test.js');

exports.title = 'Redis broker, freshet killed and restarted mid-stream: every event, none twice (SSE, long-poll, WebSocket)';
exports.timeout = 45000;

const CONNS = { sse: 'auto', poll: 'poll', ws: 'ws' };

exports.run = async function (ctx) {
  const redis = await new lib.Redis().start();
  const { app: appPath } = app(redis.url);
  const srv = new lib.Freshet(appPath);
  ctx.servers.push(srv);
  await srv.start();
  const other = new lib.Freshet(appPath);
  ctx.servers.push(other);
  await other.start();

  const pages = {};
  for (const name of Object.keys(CONNS)) {
    const page = await lib.openPage(ctx.browser, srv.url + '/');
    ctx.pages.push(page);
    pages[name] = page;
    await page.evaluate(([n, t]) => window.start(n, '/s/t', {
      transport: t, events: ['tick'], backoff: { base: 200, cap: 1000, jitter: 0.5 },
      pollTimeout: 4000, bufferedTimeout: 0,
    }), [name, CONNS[name]]);
  }
  for (const name of Object.keys(pages)) {
    await lib.waitFor(name + ' active', async () => (await lib.rec(pages[name], name)).state === 'active', 10000);
  }

  const pub = lib.publisher(other.url + '/p/t', 30);
  let stopped = false;
  let killedAt = 0;
  let restartedAt = 0;
  try {
    for (const name of Object.keys(pages)) {
      await lib.waitFor(name + ' receiving before the kill', async () =>
        (await lib.rec(pages[name], name)).events.length >= 10, 10000);
    }
    await srv.kill();
    killedAt = pub.n;
    await lib.sleep(700);
    await srv.start();
    restartedAt = pub.n;
    await lib.waitFor('20 more publishes after the restart', () => pub.confirmed.size > 0 &&
      Math.max(...pub.confirmed.keys()) >= restartedAt + 20, 10000);
    await pub.stop();
    stopped = true;
  } finally {
    if (!stopped) await pub.stop();
  }
  const confirmed = [...pub.confirmed.keys()].sort((a, b) => a - b);
  assert.strictEqual(pub.failed + pub.unknown.size, 0, 'publishes to the other node failed');

  for (const name of Object.keys(pages)) {
    const r = await lib.waitFor(name + ': every confirmed event', async () => {
      const x = await lib.rec(pages[name], name);
      const got = new Set(x.events.map((e) => e.data.n));
      return confirmed.every((n) => got.has(n)) ? x : null;
    }, 15000);
    const ns = r.events.map((e) => e.data.n);
    lib.noDuplicates(ns, name);
    for (let i = 1; i < ns.length; i++) assert.ok(ns[i] > ns[i - 1], name + ': out of order: ' + ns.join(','));
    assert.deepStrictEqual(ns, confirmed, name + ': exactly the published events');
    assert.deepStrictEqual(r.gaps, [], name + ': the Redis broker resumes exactly, there is no gap');
    assert.strictEqual(r.stats.duplicates, 0, name + ': the client had to drop repeated events');
    // Ids are the broker's: the same event has the same id on every transport.
    for (const e of r.events) {
      if (pub.confirmed.has(e.data.n)) assert.strictEqual(e.id, pub.confirmed.get(e.data.n), name);
    }
    const states = r.states.map((s) => s.state);
    assert.ok(states.includes('reconnecting'), name + ': ' + states.join(','));
    assert.strictEqual(r.state, 'active', name);
    assert.strictEqual(r.transport, CONNS[name] === 'auto' ? 'sse' : CONNS[name], name);
    lib.notePollTimeouts(name, r);
    // What was published while the server was down reached the page by replay.
    const down = [...pub.confirmed.keys()].filter((n) => n > killedAt && n <= restartedAt);
    assert.ok(down.length >= 5, 'too few publishes while the server was down: ' + down.length);
    console.log('    ' + name + ': ' + ns.length + ' events, ' + down.length +
                ' of them published while its server was down; ' + r.stats.reconnects + ' reconnects');
  }
};
