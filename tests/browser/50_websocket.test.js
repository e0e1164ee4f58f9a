// WebSocket mode: events arrive as the same objects an SSE client gets (same ids, names, data),
// subscribe/unsubscribe change the topics of the open connection, send() reaches the route's
// message hook (whose reply comes back through onMessage), and after a restart the client
// re-applies its subscriptions before resuming.
'use strict';

const path = require('path');
const lib = require('./lib');
const { assert } = lib;
const { parseId } = require(path.join(lib.ROOT, 'client', 'freshet.js'))._internal;

exports.title = 'WebSocket mode: events, subscribe/unsubscribe, send() to the message hook, resubscribe after a restart';
exports.timeout = 40000;

function wsApp() {
  return lib.writeApp({
    'app.lua': `
      local freshet = require "freshet"
      local app = freshet.app { retry = 1000, drain = 0 }
      app:stream("/w/:topic", "routes/stream.lua")
      app:publish("/p/:topic", "routes/pub.lua")
      app:static("/", "public")
      return app
    `,
    'routes/stream.lua': `
      local freshet = require "freshet"
      local route = { on_gap = "reset" }

      local function has(list, t)
        for _, x in ipairs(list) do if x == t then return true end end
        return false
      end

      -- Without a change: the topic in the path. With one (a WebSocket subscribe or
      -- unsubscribe): the current list with the change applied, topics named "secret" refused.
      function route.topics(req, who, change)
        if not change then return { req.params.topic } end
        local out = {}
        for _, t in ipairs(change.current) do
          if not (change.op == "unsubscribe" and has(change.topics, t)) then out[#out + 1] = t end
        end
        if change.op == "subscribe" then
          for _, t in ipairs(change.topics) do
            if t == "secret" then error("no secrets") end
            if not has(out, t) then out[#out + 1] = t end
          end
        end
        return out
      end

      function route.message(conn, msg, who)
        if msg.type == "say" then
          freshet.publish(conn.topics[1], { said = msg.text }, { event = "said" })
          return { type = "ack", text = msg.text, topics = conn.topics }
        end
        return { type = "unknown", got = msg.type }
      end
      return route
    `,
    'routes/pub.lua': `
      local route = {}
      function route.publish(req, body, who)
        return { topic = req.params.topic, data = body, event = req.headers["x-event"] }
      end
      return route
    `,
  });
}

async function publish(srv, topic, body, event) {
  const res = await lib.request(srv.url + '/p/' + topic, { method: 'POST', body: body,
    headers: event ? { 'X-Event': event } : {} });
  assert.strictEqual(res.status, 201, res.body);
  return JSON.parse(res.body).id;
}

exports.run = async function (ctx) {
  const { app } = wsApp();
  const srv = new lib.Freshet(app, { port: 0 });
  srv.port = null;
  ctx.servers.push(srv);
  await srv.start();

  const page = await lib.openPage(ctx.browser, srv.url + '/');
  ctx.pages.push(page);
  const opts = { events: ['tick', 'said'], backoff: { base: 200, cap: 1000, jitter: 0.5 } };
  await page.evaluate((o) => {
    window.start('ws', '/w/a', Object.assign({ transport: 'ws' }, o));
    window.start('sse', '/w/a', Object.assign({ transport: 'sse' }, o));
  }, opts);
  for (const n of ['ws', 'sse']) {
    await lib.waitFor(n + ' active', async () => (await lib.rec(page, n)).state === 'active', 10000);
  }

  // 1. The same events, as the same objects, on both transports.
  const ids = [
    await publish(srv, 'a', '{"n":1,"nested":{"x":[1,2]}}', 'tick'),
    await publish(srv, 'a', 'plain text, not JSON', null),
    await publish(srv, 'a', '42', 'tick'),
    await publish(srv, 'a', '{"n":4}', 'not-listened-to'),
    await publish(srv, 'a', 'line one\nline two', 'tick'),
  ];
  const got = {};
  for (const n of ['ws', 'sse']) {
    got[n] = await lib.waitFor(n + ': four events', async () => {
      const x = await lib.rec(page, n);
      return x.events.length >= 4 ? x : null;
    }, 10000);
  }
  const strip = (e) => ({ id: e.id, event: e.event, data: e.data, text: e.text });
  assert.deepStrictEqual(got.ws.events.map(strip), got.sse.events.map(strip));
  assert.deepStrictEqual(got.ws.events.map(strip), [
    { id: ids[0], event: 'tick', data: { n: 1, nested: { x: [1, 2] } }, text: '{"n":1,"nested":{"x":[1,2]}}' },
    { id: ids[1], event: 'message', data: 'plain text, not JSON', text: 'plain text, not JSON' },
    { id: ids[2], event: 'tick', data: 42, text: '42' },
    { id: ids[4], event: 'tick', data: 'line one\nline two', text: 'line one\nline two' },
  ]);
  assert.ok(got.ws.events.every((e) => e.topic === 'a' && e.transport === 'ws'));
  assert.ok(got.sse.events.every((e) => e.topic === undefined && e.transport === 'sse'));
  // The unlisted event still moved the id on (WebSocket sees every event).
  assert.strictEqual(got.ws.lastEventId, ids[4]);

  // 2. send() and topic changes are WebSocket-only.
  const refusals = await page.evaluate(async () => {
    const out = [];
    for (const call of [() => conns.sse.send({ type: 'say' }), () => conns.sse.subscribe(['b'])]) {
      try { await call(); out.push('resolved'); } catch (e) { out.push(e.message); }
    }
    return out;
  });
  assert.deepStrictEqual(refusals, ['send() needs the WebSocket transport (transport: "ws")',
                                    'subscribe() needs the WebSocket transport (transport: "ws")']);

  // 3. subscribe on the open connection: events of topic b arrive, ids cover both topics.
  const topics = await page.evaluate(() => conns.ws.subscribe(['b']));
  assert.deepStrictEqual(topics, ['a', 'b']);
  const refused = await page.evaluate(() => conns.ws.subscribe(['secret']).then(() => 'resolved', (e) => e.message));
  assert.strictEqual(refused, 'internal error');
  const idB = await publish(srv, 'b', '{"on":"b"}', 'tick');
  const evB = await lib.waitFor('an event of topic b', async () =>
    (await lib.rec(page, 'ws')).events.find((e) => e.topic === 'b'), 10000);
  assert.deepStrictEqual(evB.data, { on: 'b' });
  assert.match(evB.id, /^v1[A-Za-z0-9_-]+$/, 'a stream of two topics: one short id');
  assert.deepStrictEqual(parseId(evB.id), parseId(ids[4] + ',' + idB),
                         'a stream of two topics carries both positions');

  // 4. send() reaches the message hook: it publishes (back to us) and replies.
  await page.evaluate(() => conns.ws.send({ type: 'say', text: 'hello hook' }));
  const ack = await lib.waitFor('the hook\'s reply', async () =>
    (await lib.rec(page, 'ws')).messages.find((m) => m.type === 'ack'), 10000);
  assert.deepStrictEqual(ack, { type: 'ack', text: 'hello hook', topics: ['a', 'b'] });
  for (const n of ['ws', 'sse']) {
    const said = await lib.waitFor(n + ': the hook\'s event', async () =>
      (await lib.rec(page, n)).events.find((e) => e.event === 'said'), 10000);
    assert.deepStrictEqual(said.data, { said: 'hello hook' });
  }

  // 5. unsubscribe: b no longer arrives.
  assert.deepStrictEqual(await page.evaluate(() => conns.ws.unsubscribe(['b'])), ['a']);
  await publish(srv, 'b', '{"on":"b","late":true}', 'tick');
  const marker = await publish(srv, 'a', '{"marker":1}', 'tick');
  await lib.waitFor('the marker', async () => (await lib.rec(page, 'ws')).lastEventId === marker, 10000);
  assert.ok(!(await lib.rec(page, 'ws')).events.some((e) => e.data && e.data.late), 'b arrived after unsubscribe');

  // 6. A restart: the client reconnects, subscribes to b again, and resumes (the memory
  // broker forgot, so the resume ends in a reset gap); then b arrives again.
  await page.evaluate(() => conns.ws.subscribe(['b']));
  // An event after the change gives the client an id with a position for each topic.
  const idA = await publish(srv, 'a', '{"after":"subscribe"}', 'tick');
  await lib.waitFor('an id for both topics', async () => {
    const pos = parseId((await lib.rec(page, 'ws')).lastEventId);
    return pos && pos.length === 2 && pos[0].join('-') === idA;
  }, 10000);
  const before = (await lib.rec(page, 'ws')).events.length;
  await srv.kill();
  await lib.sleep(300);
  await srv.start();
  const r = await lib.waitFor('ws: reset gap after the restart', async () => {
    const x = await lib.rec(page, 'ws');
    return x.gaps.length && x.state === 'active' ? x : null;
  }, 10000);
  assert.strictEqual(r.gaps[0].type, 'reset', JSON.stringify(r.gaps));
  assert.match(r.gaps[0].reason, /replay window/);
  const idB2 = await publish(srv, 'b', '{"on":"b","again":true}', 'tick');
  const again = await lib.waitFor('b after the restart', async () =>
    (await lib.rec(page, 'ws')).events.slice(before).find((e) => e.topic === 'b'), 10000);
  assert.deepStrictEqual(again.data, { on: 'b', again: true });
  assert.strictEqual(parseId(again.id)[1].join('-'), idB2);
  assert.strictEqual((await lib.rec(page, 'ws')).stats.duplicates, 0);
};
