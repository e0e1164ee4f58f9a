// The memory broker forgets everything at a restart. With the server killed (SIGKILL) and
// started again on the same port while a publisher keeps publishing, every transport reports the
// gap through onGap — from a 416 (SSE, long-poll, WebSocket handshake) or from the route's
// `reset` event (on_gap = "reset") — and then keeps receiving from the new process.
'use strict';

const lib = require('./lib');
const { assert } = lib;

exports.title = 'memory broker, server killed and restarted mid-stream: onGap reset, then events again';
exports.timeout = 45000;

const ROUTE = `
  local route = {}
  function route.topics(req, who) return { req.params.topic } end
  return route
`;

function app(broker) {
  return lib.writeApp({
    'app.lua': `
      local freshet = require "freshet"
      local app = freshet.app {
        broker = "${broker}",
        retry = 1000,
        drain = 0,
        poll_timeout = 2,
      }
      app:stream("/s/:topic", "routes/strict.lua")  -- a stale id gets 416
      app:stream("/r/:topic", "routes/reset.lua")   -- a stale id gets a reset event
      app:publish("/p/:topic", "routes/pub.lua")
      app:static("/", "public")
      return app
    `,
    'routes/strict.lua': ROUTE,
    'routes/reset.lua': ROUTE.replace('local route = {}', 'local route = { on_gap = "reset" }'),
    'routes/pub.lua': `
      local route = { body = "json" }
      function route.publish(req, body, who)
        return { topic = req.params.topic, data = body, event = "tick" }
      end
      return route
    `,
  });
}
exports.app = app;

// name → [path, transport, how the gap is expected to show]
const CONNS = {
  sse416: ['/s/t', 'auto', 416],
  sseReset: ['/r/t', 'auto', 'event'],
  poll416: ['/s/t', 'poll', 416],
  ws416: ['/s/t', 'ws', 416],
  wsReset: ['/r/t', 'ws', 'event'],
};

exports.run = async function (ctx) {
  const { app: appPath } = app('memory');
  const srv = new lib.Freshet(appPath);
  ctx.servers.push(srv);
  await srv.start();

  const pages = {};
  for (const name of Object.keys(CONNS)) {
    const [p, transport] = CONNS[name];
    const page = await lib.openPage(ctx.browser, srv.url + '/');
    ctx.pages.push(page);
    pages[name] = page;
    await page.evaluate(([n, url, t]) => window.start(n, url, {
      transport: t, events: ['tick'], backoff: { base: 200, cap: 1000, jitter: 0.5 },
      pollTimeout: 4000, // the app's poll_timeout is 2 s
    }), [name, p, transport]);
  }
  for (const name of Object.keys(pages)) {
    await lib.waitFor(name + ' active', async () => (await lib.rec(pages[name], name)).state === 'active', 10000);
  }
  // Long-polls count as active after being held a second; give them that before publishing.
  const pub = lib.publisher(srv.url + '/p/t', 40);
  try {
    for (const name of Object.keys(pages)) {
      await lib.waitFor(name + ' receiving before the kill', async () =>
        (await lib.rec(pages[name], name)).events.length >= 5, 10000);
    }
    await srv.kill();
    const killedAt = pub.n;
    await lib.sleep(600);
    await srv.start();
    const restartedAt = pub.n;

    for (const name of Object.keys(pages)) {
      const [, , how] = CONNS[name];
      const r = await lib.waitFor(name + ': a reset gap and 5 events published after the restart', async () => {
        const x = await lib.rec(pages[name], name);
        const after = x.events.filter((e) => e.data.n > restartedAt);
        return x.gaps.length >= 1 && after.length >= 5 ? x : null;
      }, 15000);
      const ctxt = name + ' ' + JSON.stringify({
        gaps: r.gaps, states: r.states.map((s) => s.state + ':' + (s.info.reason || '')),
      });
      assert.strictEqual(r.gaps.length, 1, 'one gap for ' + ctxt);
      const gap = r.gaps[0];
      assert.strictEqual(gap.type, 'reset', ctxt);
      assert.ok(gap.lastEventId, 'the gap names the id that could not be resumed: ' + ctxt);
      if (how === 416) {
        assert.strictEqual(gap.status, 416, ctxt);
        assert.strictEqual(gap.id, null, ctxt);
      } else {
        assert.strictEqual(gap.status, undefined, ctxt);
        assert.match(gap.id, /^\d+-\d+$/, 'a reset event carries the current position: ' + ctxt);
        assert.match(gap.reason, /replay window/, ctxt);
      }
      // In order, none twice; what was published while the server was down is simply gone.
      const ns = r.events.map((e) => e.data.n);
      lib.noDuplicates(ns, name);
      for (let i = 1; i < ns.length; i++) assert.ok(ns[i] > ns[i - 1], name + ': out of order: ' + ns.join(','));
      assert.ok(ns.some((n) => n <= killedAt), name + ': nothing from before the kill');
      assert.strictEqual(r.stats.duplicates, 0, name);
      assert.ok(r.events.every((e) => e.event === 'tick'), name);
      const states = r.states.map((s) => s.state);
      assert.ok(states.indexOf('reconnecting') > 0, name + ': never reported reconnecting: ' + states.join(','));
      assert.strictEqual(states[states.length - 1], 'active', name + ': ' + states.join(','));
      assert.strictEqual(r.transport, CONNS[name][1] === 'auto' ? 'sse' : CONNS[name][1], name);
      lib.notePollTimeouts(name, r);
    }
  } finally {
    await pub.stop();
  }
};
