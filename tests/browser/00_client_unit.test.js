// The client's pure parts in Node: the SSE parser that long-polling shares with EventSource's
// rules, the backoff formula, and the duplicate guard on ids.
'use strict';

const path = require('path');
const { assert, ROOT } = require('./lib');

exports.title = 'client helpers: SSE parsing, backoff with jitter, id order';
exports.timeout = 5000;

exports.run = async function () {
  const freshet = require(path.join(ROOT, 'client', 'freshet.js'));
  const { parseSSE, backoffDelay, alreadySeen, parseId } = freshet._internal;

  // The framing a long-poll answer carries, with every line ending EventSource accepts.
  const body = 'id: 1700000000000-0\nevent: message\ndata: {"a":1}\n\n' +
               ':\r\n\r\n' +
               'event: dropped\rdata: {"dropped":2}\r\r' +
               'id: 1700000000000-1\r\ndata: line 1\r\ndata:line 2\r\n\r\n' +
               'data\n\n' +
               'id: 1700000000000-2\ndata: no blank line after me\n';
  const parsed = parseSSE(body, null);
  assert.deepStrictEqual(parsed.events, [
    { id: '1700000000000-0', event: 'message', text: '{"a":1}' },
    { id: '1700000000000-0', event: 'dropped', text: '{"dropped":2}' },
    { id: '1700000000000-1', event: 'message', text: 'line 1\nline 2' },
    { id: '1700000000000-1', event: 'message', text: '' },
  ]);
  // The id of an event that was never completed is kept (EventSource does the same).
  assert.strictEqual(parsed.lastId, '1700000000000-2');
  assert.deepStrictEqual(parseSSE('event: x\n\n', '5-5'), { events: [], lastId: '5-5' });

  // min(cap, base * 2^attempt) * (1 ± jitter/2)
  const b = { base: 1000, cap: 30000, jitter: 0.5 };
  assert.strictEqual(backoffDelay(0, b, () => 0.5), 1000);
  assert.strictEqual(backoffDelay(0, b, () => 0), 750);
  assert.strictEqual(backoffDelay(0, b, () => 1), 1250);
  assert.strictEqual(backoffDelay(3, b, () => 0.5), 8000);
  assert.strictEqual(backoffDelay(10, b, () => 0.5), 30000);
  assert.strictEqual(backoffDelay(10, b, () => 0), 22500);
  assert.strictEqual(backoffDelay(2, { base: 100, cap: 1000, jitter: 0 }, Math.random), 400);

  assert.strictEqual(alreadySeen('1-0', '1-1'), true);
  assert.strictEqual(alreadySeen('1-1', '1-1'), true);
  assert.strictEqual(alreadySeen('1-2', '1-1'), false);
  assert.strictEqual(alreadySeen('2-0', '1-9'), false);
  assert.strictEqual(alreadySeen('5-0,7-1', '5-0,7-2'), true);
  assert.strictEqual(alreadySeen('5-0,7-3', '5-0,7-2'), false);
  // Another topic list (after subscribe): not comparable, so never dropped.
  assert.strictEqual(alreadySeen('5-0', '5-0,7-2'), false);

  // The v1 ids of streams that follow several topics (src/codec/ids.h; the same vectors as
  // tests/unit/test_ids.c): the newest ms, the span, each topic from the nearer end.
  assert.deepStrictEqual(parseId('v1ofAAA'), [[1000, 0], [1000, 0]]);
  assert.deepStrictEqual(parseId('v1ofKAYF'), [[1000, 0], [990, 5]]);
  assert.deepStrictEqual(parseId('v1ofKAFI'), [[1000, 0], [995, 0], [990, 0]]);
  assert.deepStrictEqual(parseId('v1ofkDAIiB'), [[1000, 0], [900, 0], [990, 0]]);
  assert.deepStrictEqual(parseId('v1jgt47mtyBDAI'),
                         [[1732176000003, 0], [1732176000000, 0]]);
  assert.deepStrictEqual(parseId('1732176000000-3'), [[1732176000000, 3]]);
  for (const bad of ['v1', 'v1of', 'v1ofA', 'v1ofAA', 'v1ofA!A', 'v1ofAQ', 'v1BCAI',
                     'v1' + '_'.repeat(12) + 'PAAA']) {
    assert.strictEqual(parseId(bad), null, bad);
  }
  // The same positions, in the v1 form the server sends now and comma-joined as before.
  assert.strictEqual(alreadySeen('v1ofKAYF', '1000-0,990-5'), true);
  assert.strictEqual(alreadySeen('1000-0,990-5', 'v1ofKAYF'), true);
  assert.strictEqual(alreadySeen('v1ofKAYF', '1000-0,990-4'), false);
  assert.strictEqual(alreadySeen('v1ofKAYF', 'v1ofAAA'), true);
  assert.strictEqual(alreadySeen('v1ofAAA', 'v1ofKAYF'), false);
};
