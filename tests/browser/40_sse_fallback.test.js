// SSE made to fail, two ways, while long-polling on the same route works:
//  1. the route refuses every request that is not a long-poll with 502, as a proxy that cannot
//     carry streaming responses would: after `fallbackAfter` failures the client long-polls;
//  2. a proxy (written here, in front of freshet) that passes the stream's headers but holds its
//     body, as a buffering proxy does: EventSource opens and then delivers nothing; after
//     `bufferedTimeout` a check poll finds events SSE did not deliver and the client long-polls.
// Either way it keeps receiving, in order, none twice.
'use strict';

const http = require('http');
const lib = require('./lib');
const { assert } = lib;

exports.title = 'SSE fails (502 / buffered by a proxy): the client falls back to long-polling and keeps receiving';
exports.timeout = 45000;

function fallbackApp() {
  return lib.writeApp({
    'app.lua': `
      local freshet = require "freshet"
      local app = freshet.app { retry = 1000, drain = 0, poll_timeout = 2 }
      app:stream("/s/:topic", "routes/stream.lua")
      app:publish("/p/:topic", "routes/pub.lua")
      app:static("/", "public")
      return app
    `,
    'routes/stream.lua': `
      local route = {}
      -- Stands in for a proxy that breaks streaming responses: only long-polls get through.
      function route.auth(req)
        if req.query.transport ~= "poll" then
          return nil, 502, "this path cannot stream"
        end
        return {}
      end
      function route.topics(req, who) return { req.params.topic } end
      return route
    `,
    'routes/pub.lua': `
      local route = { body = "json" }
      function route.publish(req, body, who) return { topic = req.params.topic, data = body } end
      return route
    `,
  });
}

function plainApp() {
  const a = fallbackApp();
  require('fs').writeFileSync(a.dir + '/routes/stream.lua',
    'local route = {}\nfunction route.topics(req, who) return { req.params.topic } end\nreturn route\n');
  return a;
}

// Forwards everything to freshet; a streaming answer (no Content-Length) gets its headers at
// once but its body is held until 64 KiB have gathered, which a quiet test stream never does.
function bufferingProxy(upstreamPort) {
  const agent = new http.Agent({ keepAlive: true });
  const held = [];
  const server = http.createServer((req, res) => {
    const up = http.request({ host: lib.HOST, port: upstreamPort, method: req.method, path: req.url,
                              headers: req.headers, agent: agent }, (ur) => {
      res.writeHead(ur.statusCode, ur.headers);
      if (ur.headers['content-length'] !== undefined || !/event-stream/.test(ur.headers['content-type'] || '')) {
        ur.pipe(res);
        return;
      }
      res.flushHeaders();
      const buf = [];
      let size = 0;
      held.push(ur);
      ur.on('data', (d) => {
        buf.push(d);
        size += d.length;
        if (size >= 65536) { res.write(Buffer.concat(buf)); buf.length = 0; size = 0; }
      });
      ur.on('end', () => res.end(Buffer.concat(buf)));
      res.on('close', () => ur.destroy());
    });
    up.on('error', () => { if (!res.headersSent) res.writeHead(502); res.end(); });
    req.pipe(up);
    res.on('close', () => { if (!res.writableEnded) up.destroy(); });
  });
  return new Promise((resolve) => server.listen(0, lib.HOST, () => {
    lib.onCleanup(() => new Promise((r) => { agent.destroy(); server.closeAllConnections(); server.close(() => r()); }));
    resolve({ port: server.address().port, held: held });
  }));
}

async function expectFallback(ctx, base, opts, reasonRe, label) {
  const page = await lib.openPage(ctx.browser, base + '/');
  ctx.pages.push(page);
  await page.evaluate((o) => window.start('c', '/s/t', o), opts);
  // Falls back, then holds a long-poll: active on poll.
  const r0 = await lib.waitFor(label + ': active on long-polling', async () => {
    const x = await lib.rec(page, 'c');
    return x.state === 'active' && x.transport === 'poll' ? x : null;
  }, 15000);
  const fallback = r0.states.find((s) => /falling back/.test(s.info.reason || ''));
  assert.ok(fallback, label + ': no fallback state: ' + JSON.stringify(r0.states));
  assert.match(fallback.info.reason, reasonRe, label);
  assert.strictEqual(r0.stats.fallbacks, 1, label);
  return { page, r0, fallback };
}

exports.run = async function (ctx) {
  // 1. 502 for every SSE request.
  {
    const { app } = fallbackApp();
    const srv = new lib.Freshet(app);
    ctx.servers.push(srv);
    await srv.start();
    const { page, fallback, r0 } = await expectFallback(ctx, srv.url, {
      fallbackAfter: 3, backoff: { base: 100, cap: 400, jitter: 0.5 }, pollTimeout: 4000,
    }, /SSE failed 3 times/, '502');
    assert.strictEqual(fallback.info.status, 502, JSON.stringify(fallback.info));
    assert.strictEqual(fallback.info.error, 'this path cannot stream');
    const sseTries = r0.states.filter((s) => s.state === 'reconnecting' && s.info.transport === 'sse');
    assert.strictEqual(sseTries.length, 2, 'two SSE retries before the third failure: ' + JSON.stringify(r0.states));
    // Backoff grew between them (100 ms, then 200 ms, each ± 25 %).
    assert.ok(sseTries[0].info.delay >= 75 && sseTries[0].info.delay <= 125, JSON.stringify(sseTries[0].info));
    assert.ok(sseTries[1].info.delay >= 150 && sseTries[1].info.delay <= 250, JSON.stringify(sseTries[1].info));

    const sent = [];
    for (let n = 1; n <= 15; n++) {
      const res = await lib.publishJSON(srv.url + '/p/t', { n: n });
      assert.strictEqual(res.status, 201, res.body);
      sent.push(n);
      await lib.sleep(n % 5 === 0 ? 300 : 20);
    }
    const r = await lib.waitFor('502: all 15 events over long-polling', async () => {
      const x = await lib.rec(page, 'c');
      return x.events.length >= 15 ? x : null;
    }, 10000);
    assert.deepStrictEqual(r.events.map((e) => e.data.n), sent);
    assert.ok(r.events.every((e) => e.transport === 'poll'));
    assert.strictEqual(r.transport, 'poll');
    lib.notePollTimeouts('502', r);
  }

  // 2. A buffering proxy.
  {
    const { app } = plainApp();
    const srv = new lib.Freshet(app);
    ctx.servers.push(srv);
    await srv.start();
    const proxy = await bufferingProxy(srv.port);
    const base = 'http://' + lib.HOST + ':' + proxy.port;
    // SSE opens (the proxy passes the headers) and is active; then it stays silent.
    const page = await lib.openPage(ctx.browser, base + '/');
    ctx.pages.push(page);
    await page.evaluate((o) => window.start('c', '/s/t', o),
                        { bufferedTimeout: 1500, pollTimeout: 4000, backoff: { base: 100, cap: 400, jitter: 0.5 } });
    await lib.waitFor('buffered: SSE open', async () => {
      const x = await lib.rec(page, 'c');
      return x.state === 'active' && x.transport === 'sse';
    }, 10000);
    const pub = lib.publisher(srv.url + '/p/t', 100);
    let r0;
    try {
      r0 = await lib.waitFor('buffered: active on long-polling', async () => {
        const x = await lib.rec(page, 'c');
        return x.transport === 'poll' && x.state === 'active' ? x : null;
      }, 15000);
      await lib.waitFor('buffered: 10 events after the fallback', async () =>
        (await lib.rec(page, 'c')).events.length >= 10, 10000);
    } finally {
      await pub.stop();
    }
    assert.ok(proxy.held.length >= 1, 'the SSE request never went through the proxy');
    const fallback = r0.states.find((s) => /falling back/.test(s.info.reason || ''));
    assert.match(fallback.info.reason, /delivered nothing for 1500 ms while a long-poll got events/);
    const last = Math.max(...pub.confirmed.keys());
    const r = await lib.waitFor('buffered: every event from the first one received on', async () => {
      const x = await lib.rec(page, 'c');
      return x.events.length && x.events[x.events.length - 1].data.n === last ? x : null;
    }, 10000);
    // A stream that has delivered nothing has no id to resume from: events published before the
    // check poll started are not recoverable. From the first event on, nothing is missing.
    const ns = r.events.map((e) => e.data.n);
    const first = ns[0];
    const expected = [...pub.confirmed.keys()].filter((n) => n >= first).sort((a, b) => a - b);
    assert.deepStrictEqual(ns, expected);
    assert.ok(r.events.every((e) => e.transport === 'poll'), 'nothing came through the buffered stream');
    assert.strictEqual(r.stats.duplicates, 0);
    lib.notePollTimeouts('buffered', r);
  }
};
