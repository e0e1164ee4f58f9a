'use strict';
// The Node.js reference server for the side-by-side benchmark (scripts/bench/compare.sh): an
// SSE server written the way the Node.js texts the project started from describe one, with the
// plain `http` module and no packages, serving the URLs and semantics of scripts/bench/app.lua:
//
//   GET  /sub/<topic>   an event stream of one topic: "retry: 3000" first, then every event
//                       published after the request (or after its Last-Event-ID), a ":"
//                       comment after 15 quiet seconds
//   POST /pub/<topic>   the body becomes one event "id: <n>\ndata: <body>\n\n"; 201 {"id":"<n>"}
//   GET  /health        200 {"status":"ok",...}
//
// Each topic keeps its last 1,000 events (at most 300 s old) for replay. Ids are 1, 2, 3, ...
// per topic. A Last-Event-ID (header, or ?lastEventId=) resumes after that id; one older than
// the buffer gets 416 and one never issued gets 400, as freshet answers.
//
// Backpressure: an event is written to each stream with res.write(); when that returns false
// the stream stops taking writes and keeps further events in its own queue until 'drain'. A
// stream whose queue reaches 1,000 events is closed, so a stalled client cannot hold memory
// without bound; it comes back with its Last-Event-ID and replays.
//
// Usage: node scripts/bench/peers/node_server.js PORT [HOST=127.0.0.1]

const http = require('http');

const REPLAY_EVENTS = 1000;
const REPLAY_MS = 300 * 1000;
const HEARTBEAT_MS = 15 * 1000;
const RETRY_MS = 3000;
const MAX_QUEUED = 1000;
const MAX_BODY = 1024 * 1024;

const port = Number(process.argv[2]);
const host = process.argv[3] || '127.0.0.1';
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  process.stderr.write('usage: node node_server.js PORT [HOST]\n');
  process.exit(2);
}

// topic name -> { nextId, ring, count, streams }. The ring holds the last `count` events, ids
// nextId - count .. nextId - 1; event n sits in slot n % REPLAY_EVENTS.
const topics = new Map();
let streamCount = 0;

function topicOf(name) {
  let t = topics.get(name);
  if (!t) {
    t = { nextId: 1, ring: new Array(REPLAY_EVENTS), count: 0, streams: new Set() };
    topics.set(name, t);
  }
  return t;
}

// Forgets events older than the replay window's time.
function expire(t, now) {
  while (t.count > 0) {
    const slot = (t.nextId - t.count) % REPLAY_EVENTS;
    if (now - t.ring[slot].at <= REPLAY_MS) break;
    t.ring[slot] = undefined;
    t.count--;
  }
}

function remember(t, id, at, frame) {
  t.ring[id % REPLAY_EVENTS] = { at, frame };
  if (t.count < REPLAY_EVENTS) t.count++;
}

// One event's bytes, built once and written to every stream as the same Buffer.
function frameOf(id, body) {
  const lines = body.split(/\r\n|\r|\n/);
  let text = 'id: ' + id + '\n';
  for (const line of lines) text += 'data: ' + line + '\n';
  return Buffer.from(text + '\n');
}

function send(stream, buf) {
  stream.lastWrite = Date.now();
  if (!stream.res.write(buf)) {
    stream.paused = true;
    stream.res.once('drain', () => flush(stream));
  }
}

// 'drain': write what waited, stopping again if the socket fills up again.
function flush(stream) {
  stream.paused = false;
  while (!stream.closed && !stream.paused && stream.queue.length) {
    send(stream, stream.queue.shift());
  }
}

function deliver(stream, buf) {
  if (stream.closed) return;
  if (!stream.paused) {
    send(stream, buf);
    return;
  }
  if (stream.queue.length >= MAX_QUEUED) {
    // Too far behind: close; the client resumes from its Last-Event-ID.
    stream.closed = true;
    stream.res.destroy();
    return;
  }
  stream.queue.push(buf);
}

function reply(res, status, obj, extra) {
  const body = JSON.stringify(obj);
  res.writeHead(status, Object.assign({
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
  }, extra || {}));
  res.end(body);
}

function topicFromPath(path, prefix) {
  if (!path.startsWith(prefix)) return null;
  let name;
  try {
    name = decodeURIComponent(path.slice(prefix.length));
  } catch (e) {
    return null;
  }
  if (!name || name.length > 256 || /[\/\r\n\0]/.test(name)) return null;
  return name;
}

function subscribe(req, res, url) {
  const name = topicFromPath(url.pathname, '/sub/');
  if (name === null) return reply(res, 404, { error: 'not found' });
  const t = topicOf(name);
  const now = Date.now();
  expire(t, now);

  // Where to start: after Last-Event-ID, or with the next event.
  let replay = [];
  const last = req.headers['last-event-id'] || url.searchParams.get('lastEventId');
  if (last !== undefined && last !== null && last !== '') {
    if (!/^[0-9]{1,15}$/.test(last) || Number(last) >= t.nextId) {
      return reply(res, 400, { error: 'Last-Event-ID was never issued by this stream' });
    }
    const after = Number(last);
    if (after + 1 < t.nextId - t.count) {
      return reply(res, 416, { error: 'Last-Event-ID is older than the replay window' });
    }
    for (let id = after + 1; id < t.nextId; id++) replay.push(t.ring[id % REPLAY_EVENTS].frame);
  }

  res.writeHead(200, {
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache',
    'Connection': 'keep-alive',
    'X-Accel-Buffering': 'no',
  });
  const stream = { res, topic: t, queue: [], paused: false, closed: false, lastWrite: now };
  t.streams.add(stream);
  streamCount++;
  send(stream, Buffer.from('retry: ' + RETRY_MS + '\n\n'));
  for (const frame of replay) deliver(stream, frame);

  // Clean up whatever way the stream ends: client gone, reset, or closed by us.
  res.on('close', () => {
    stream.closed = true;
    stream.queue = [];
    if (t.streams.delete(stream)) streamCount--;
  });
}

function publish(req, res, url) {
  const name = topicFromPath(url.pathname, '/pub/');
  if (name === null) return reply(res, 404, { error: 'not found' });
  const chunks = [];
  let size = 0;
  let refused = false;
  req.on('data', (chunk) => {
    if (refused) return;
    size += chunk.length;
    if (size > MAX_BODY) {
      refused = true;
      reply(res, 413, { error: 'body too large' }, { Connection: 'close' });
      req.destroy();
      return;
    }
    chunks.push(chunk);
  });
  req.on('end', () => {
    if (refused) return;
    const t = topicOf(name);
    const now = Date.now();
    const id = t.nextId++;
    const frame = frameOf(id, Buffer.concat(chunks, size).toString('utf8'));
    remember(t, id, now, frame);
    expire(t, now);
    for (const stream of t.streams) deliver(stream, frame);
    reply(res, 201, { id: String(id) });
  });
}

const server = http.createServer({ noDelay: true }, (req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (req.method === 'GET' && url.pathname.startsWith('/sub/')) return subscribe(req, res, url);
  if (req.method === 'POST' && url.pathname.startsWith('/pub/')) return publish(req, res, url);
  if ((req.method === 'GET' || req.method === 'HEAD') && url.pathname === '/health') {
    return reply(res, 200, { status: 'ok', streams: streamCount, topics: topics.size });
  }
  return reply(res, 404, { error: 'not found' });
});

// A publisher keeps one keep-alive connection for a whole run, idle at times for longer than
// Node's 5 s default; a stream's request is complete once its head is in, so no request
// timeout applies to the long response.
server.keepAliveTimeout = 600 * 1000;
server.requestTimeout = 0;
server.headersTimeout = 60 * 1000;

// Heartbeats: one timer for all streams, a ":" comment to each stream quiet for 15 s.
const heartbeat = Buffer.from(':\n\n');
setInterval(() => {
  const due = Date.now() - HEARTBEAT_MS;
  for (const t of topics.values()) {
    for (const stream of t.streams) {
      if (stream.lastWrite <= due && !stream.paused) send(stream, heartbeat);
    }
  }
}, 1000).unref();

function stop() {
  server.close();
  for (const t of topics.values()) {
    for (const stream of t.streams) stream.res.end();
  }
  setTimeout(() => process.exit(0), 200).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

server.listen(port, host, 4096, () => {
  process.stderr.write(`node_server: listening on ${host}:${port}\n`);
});
