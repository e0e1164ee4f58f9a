// Refusals a browser survives. A native EventSource gives up for good on any status but 200, so
// the server refuses a request that looks like one (Accept: text/event-stream, no
// ?refusal=status) "for now" in the stream: 200, retry:, event: freshet-refused, the end. Here
// the stream rate limit (one new stream per second per client) refuses a bare EventSource: it
// gets the freshet-refused event, reconnects by itself after the jittered retry, and receives
// events, with no page reload and without ever being CLOSED. The JavaScript client, which asks
// for statuses, gets the 429 instead and waits its Retry-After before connecting.
'use strict';

const lib = require('./lib');
const { assert } = lib;

exports.title = 'a bare EventSource refused by the rate limit reconnects by itself; the client reads the 429';
exports.timeout = 40000;

function app() {
  return lib.writeApp({
    'app.lua': `
      local freshet = require "freshet"
      local app = freshet.app {
        retry = 1000,
        drain = 0,
        tiers = { free = { rate = 1, burst = 1 } },
      }
      app:stream("/s/:topic", "routes/stream.lua")
      app:publish("/p/:topic", "routes/pub.lua")
      app:static("/", "public")
      return app
    `,
    'routes/stream.lua': `
      local route = {}
      function route.auth(req) return { id = req.query.user } end
      function route.topics(req, who) return { req.params.topic } end
      function route.tier(req, who) return "free" end
      return route
    `,
    'routes/pub.lua': `
      local route = { body = "json" }
      function route.publish(req, body, who) return { topic = req.params.topic, data = body } end
      return route
    `,
  });
}

exports.run = async function (ctx) {
  const { app: appPath } = app();
  const srv = new lib.Freshet(appPath);
  ctx.servers.push(srv);
  await srv.start();
  const page = await lib.openPage(ctx.browser, srv.url + '/');
  ctx.pages.push(page);

  // 1. A bare EventSource, opened right after another took the client's only token.
  await page.evaluate(() => {
    window.loadedOnce = true; // a reload would lose it
    return new Promise((resolve, reject) => {
      const log = window.esLog = [];
      const first = new EventSource('/s/a?user=ann');
      first.onerror = () => reject(new Error('the first EventSource failed'));
      first.onopen = () => {
        first.close();
        const es = window.es = new EventSource('/s/a?user=ann');
        es.onopen = () => log.push({ type: 'open', at: Date.now() });
        es.onerror = () => log.push({ type: 'error', readyState: es.readyState, at: Date.now() });
        es.onmessage = (e) => log.push({ type: 'message', data: e.data, id: e.lastEventId, at: Date.now() });
        es.addEventListener('freshet-refused', (e) =>
          log.push({ type: 'refused', data: JSON.parse(e.data), at: Date.now() }));
        resolve();
      };
    });
  });
  const esLog = () => page.evaluate(() => window.esLog);
  const refusedAt = await lib.waitFor('the freshet-refused event', async () =>
    (await esLog()).findIndex((x) => x.type === 'refused') + 1, 10000) - 1;
  let log = await esLog();
  const refused = log[refusedAt];
  assert.strictEqual(refused.data.reason, 'rate_limit', JSON.stringify(refused));
  assert.strictEqual(refused.data.status, 429, JSON.stringify(refused));
  assert.ok(refused.data.retry_ms >= 1000 && refused.data.retry_ms <= 1500,
            'retry_ms with jitter: ' + JSON.stringify(refused));
  assert.match(refused.data.error, /too many new streams/);
  // It comes back by itself once the token is back.
  log = await lib.waitFor('the EventSource to open again after the refusal', async () => {
    const l = await esLog();
    return l.slice(refusedAt).some((x) => x.type === 'open') ? l : null;
  }, 10000);
  const after = log.slice(refusedAt);
  const reopened = after.find((x) => x.type === 'open');
  const errors = after.filter((x) => x.type === 'error');
  assert.ok(errors.length >= 1 && errors.every((x) => x.readyState === 0),
            'after the refusal the EventSource reconnects (CONNECTING), never CLOSED: ' + JSON.stringify(log));
  assert.ok(reopened.at - refused.at >= refused.data.retry_ms - 100,
            'reconnected ' + (reopened.at - refused.at) + ' ms after the refusal; retry was ' +
            refused.data.retry_ms + ' ms');
  const res = await lib.publishJSON(srv.url + '/p/a', { n: 1 });
  assert.strictEqual(res.status, 201, res.body);
  const id = JSON.parse(res.body).id;
  log = await lib.waitFor('the event on the reconnected EventSource', async () => {
    const l = await esLog();
    return l.some((x) => x.type === 'message') ? l : null;
  }, 10000);
  const msg = log.find((x) => x.type === 'message');
  assert.deepStrictEqual([msg.id, JSON.parse(msg.data)], [id, { n: 1 }]);
  assert.strictEqual(await page.evaluate(() => window.es.readyState), 1, 'the EventSource is OPEN');
  assert.strictEqual(await page.evaluate(() => window.loadedOnce), true, 'the page was reloaded');
  await page.evaluate(() => window.es.close());
  console.log('    EventSource: refused (' + refused.data.reason + ', retry ' + refused.data.retry_ms +
              ' ms), open again after ' + (reopened.at - refused.at) + ' ms, then the event');

  // 2. The JavaScript client sends refusal=status: it gets the 429 and waits its Retry-After.
  // A stream request with a malformed Last-Event-ID takes bob's token (the tier comes first)
  // and is answered 400 at once.
  const took = await lib.request(srv.url + '/s/a?user=bob',
                                 { headers: { Accept: 'text/event-stream', 'Last-Event-ID': 'x' } });
  assert.strictEqual(took.status, 400, took.body);
  await page.evaluate(() => window.start('c', '/s/a?user=bob',
                                         { transport: 'sse', backoff: { base: 100, cap: 400, jitter: 0 } }));
  const r = await lib.waitFor('the client to be active', async () => {
    const x = await lib.rec(page, 'c');
    return x.state === 'active' ? x : null;
  }, 10000);
  const waited = r.states.find((s) => s.state === 'reconnecting');
  assert.ok(waited, 'the client never waited: ' + JSON.stringify(r.states));
  assert.strictEqual(waited.info.status, 429, JSON.stringify(waited.info));
  assert.ok(waited.info.delay >= 1000, 'the client waited less than Retry-After: ' + JSON.stringify(waited.info));
  const res2 = await lib.publishJSON(srv.url + '/p/a', { n: 2 });
  assert.strictEqual(res2.status, 201, res2.body);
  await lib.waitFor('the event on the client', async () => {
    const x = await lib.rec(page, 'c');
    return x.events.some((e) => e.data && e.data.n === 2);
  }, 10000);
  assert.match(srv.log, /warn refused \d+ new streams? \(rate_limit \d+\)/);
};
