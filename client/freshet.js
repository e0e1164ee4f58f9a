// freshet browser client: one dependency-free file, served by every freshet server at
// /_freshet/freshet.js. Reference: docs/CLIENT.md.
//
//   const s = freshet.connect('/rooms/lobby/events?user=ann', {
//     onEvent(ev) { ... },                 // {id, event, data, text, topic, transport}
//     onState(state, info) { ... },        // connecting | active | reconnecting | closed
//     onGap(info) { ... },                 // {type: 'reset' | 'dropped', ...}: re-fetch state
//   });
//
// Transports: Server-Sent Events (EventSource), long-polling (?transport=poll) and WebSocket.
// All three end in the same event objects and the same last-id bookkeeping, so a stream can
// move from one to another without losing or repeating an event.
(function (root, factory) {
  'use strict';
  const api = factory();
  if (typeof module === 'object' && module.exports) module.exports = api;
  if (root) root.freshet = api;
})(typeof globalThis !== 'undefined' ? globalThis : this, function () {
  'use strict';

  const VERSION = '1';
  const STATES = ['connecting', 'active', 'reconnecting', 'closed'];
  const DEFAULTS = {
    transport: 'auto',
    lastEventId: null,
    backoff: { base: 1000, cap: 30000, jitter: 0.5, healthy: 5000 },
    fallbackAfter: 3,
    bufferedTimeout: 10000,
    pollTimeout: 40000,
    probeTimeout: 10000,
    withCredentials: false,
    events: [],
  };
  // Control messages of the WebSocket envelope (src/ws_stream.h); anything else that is not an
  // event envelope is a reply from the route's message hook.
  const WS_CONTROL = { dropped: 1, reset: 1, subscribed: 1, error: 1, pong: 1 };

  // ------------------------------------------------------------------------------------------
  // Pure helpers (exported under freshet._internal for tests)

  // delay = min(cap, base * 2^attempt) * (1 ± jitter/2): the jitter spreads clients that lost
  // the same server at the same instant, so they do not all come back together.
  function backoffDelay(attempt, backoff, random) {
    const r = typeof random === 'function' ? random() : Math.random();
    const raw = Math.min(backoff.cap, backoff.base * Math.pow(2, Math.max(0, attempt)));
    return Math.max(0, Math.round(raw * (1 + backoff.jitter * (r - 0.5))));
  }

  // Parses SSE text (a long-poll body) exactly as EventSource would: the same fields, the same
  // line endings, the id buffer carried over from the previous event, and a trailing event
  // without its blank line discarded.
  function parseSSE(text, lastId) {
    const events = [];
    let id = lastId == null ? '' : lastId;
    let type = '';
    let data = [];
    let hasData = false;
    const lines = text.split(/\r\n|\r|\n/);
    // split leaves one empty string after the final line ending; it is not a blank line.
    if (lines.length && lines[lines.length - 1] === '') lines.pop();
    for (const line of lines) {
      if (line === '') {
        if (hasData) events.push({ id: id, event: type || 'message', text: data.join('\n') });
        type = '';
        data = [];
        hasData = false;
        continue;
      }
      if (line[0] === ':') continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value[0] === ' ') value = value.slice(1);
      if (field === 'event') type = value;
      else if (field === 'data') { data.push(value); hasData = true; }
      else if (field === 'id') { if (value.indexOf('\0') < 0) id = value; }
    }
    return { events: events, lastId: id };
  }

  // The digits of the server's v1 ids (base64url order).
  const V1_DIGITS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

  // A number of a v1 id from text[at]: 5-bit groups lowest first, the first holding `head`
  // bits under its flags, bit 5 of each digit saying another follows. Plain arithmetic (bit
  // operators are 32-bit); null past 2^53, which no clock reaches.
  function v1Number(text, at, head) {
    let value = 0, scale = 1, flags = 0, first = true, d;
    do {
      d = at < text.length ? V1_DIGITS.indexOf(text[at]) : -1;
      if (d < 0) return null;
      at++;
      const bits = first ? head : 5;
      if (first) flags = (d & 31) >> head;
      value += (d & ((1 << bits) - 1)) * scale;
      scale *= 1 << bits;
      first = false;
      if (value > Number.MAX_SAFE_INTEGER) return null;
    } while (d & 32);
    return { value: value, flags: flags, at: at };
  }

  // An id → [[ms, seq], …], one per topic, or null when it is not an id this client can read.
  // "<ms>-<seq>" for one topic; "v1…" for several (docs/LUA_API.md: the newest ms, the span
  // back to the oldest, then per topic its distance to the nearer end and its seq when not 0);
  // "<ms>-<seq>,<ms>-<seq>…", what servers sent before, still read.
  function parseId(id) {
    if (typeof id !== 'string' || id === '') return null;
    if (id.slice(0, 2) === 'v1') {
      const hi = v1Number(id, 2, 5);
      const span = hi && v1Number(id, hi.at, 5);
      if (!span || span.value > hi.value) return null;
      const out = [];
      let at = span.at;
      while (at < id.length) {
        const delta = v1Number(id, at, 3);
        if (!delta) return null;
        at = delta.at;
        let seq = 0;
        if (delta.flags & 2) {
          const s = v1Number(id, at, 5);
          if (!s) return null;
          seq = s.value;
          at = s.at;
        }
        const ms = delta.flags & 1 ? hi.value - span.value + delta.value : hi.value - delta.value;
        if (ms < 0) return null;
        out.push([ms, seq]);
      }
      return out.length >= 2 ? out : null;
    }
    const parts = id.split(',');
    const out = [];
    for (const p of parts) {
      const m = /^(\d+)-(\d+)$/.exec(p);
      if (!m) return null;
      out.push([Number(m[1]), Number(m[2])]);
    }
    return out;
  }

  // True when `id` is not after `last`: every position is at or before the one already seen.
  // Ids of different shapes (another topic list) cannot be compared and are never "seen".
  function alreadySeen(id, last) {
    const a = parseId(id), b = parseId(last);
    if (!a || !b || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) {
      if (a[i][0] > b[i][0] || (a[i][0] === b[i][0] && a[i][1] > b[i][1])) return false;
    }
    return true;
  }

  function message(e) {
    return String(e && e.message || e);
  }

  function parseData(text) {
    if (typeof text !== 'string') return text;
    try { return JSON.parse(text); } catch (e) { return text; }
  }

  function baseHref() {
    return typeof location !== 'undefined' && location.href ? location.href : undefined;
  }

  function withQuery(url, params) {
    const u = new URL(url, baseHref());
    for (const k of Object.keys(params)) {
      if (params[k] == null) u.searchParams.delete(k);
      else u.searchParams.set(k, params[k]);
    }
    return u;
  }

  function toHttp(u) {
    if (u.protocol === 'ws:') u.protocol = 'http:';
    else if (u.protocol === 'wss:') u.protocol = 'https:';
    return u;
  }

  function toWs(u) {
    if (u.protocol === 'http:') u.protocol = 'ws:';
    else if (u.protocol === 'https:') u.protocol = 'wss:';
    return u;
  }

  function merge(defaults, given) {
    const out = Object.assign({}, defaults, given || {});
    out.backoff = Object.assign({}, defaults.backoff, (given && given.backoff) || {});
    return out;
  }

  function retryAfterMs(res) {
    const v = res && res.headers ? res.headers.get('Retry-After') : null;
    const n = v == null ? NaN : Number(v);
    return isFinite(n) && n >= 0 ? n * 1000 : 0;
  }

  async function errorText(res) {
    try {
      const body = await res.json();
      return body && typeof body.error === 'string' ? body.error : res.statusText;
    } catch (e) {
      return res.statusText;
    }
  }

  // ------------------------------------------------------------------------------------------
  // The connection

  class Connection {
    constructor(url, options) {
      const o = merge(DEFAULTS, options);
      if (['auto', 'sse', 'ws', 'poll'].indexOf(o.transport) < 0)
        throw new TypeError('freshet.connect: transport must be auto, sse, ws or poll');
      if (typeof url !== 'string' && typeof url !== 'function')
        throw new TypeError('freshet.connect: url must be a string or a function returning one');
      this.options = o;
      this.url = url;
      this.lastEventId = o.lastEventId || null;
      this.state = 'connecting';
      this.transport = o.transport === 'auto'
        ? (typeof EventSource === 'function' ? 'sse' : 'poll')
        : o.transport;
      this.stats = { events: 0, duplicates: 0, reconnects: 0, gaps: 0, fallbacks: 0,
                     pollTimeouts: 0 };

      this._gen = 0;             // bumped whenever a transport is abandoned: stale callbacks stop
      this._attempt = 0;         // failed attempts since the last healthy connection
      this._sseFailures = 0;     // SSE failures that point at the path, not at a server outage
      this._timers = new Set();
      this._healthyTimer = null;
      this._es = null;
      this._ws = null;
      this._pollCtl = null;
      this._check = null;        // the buffered-SSE check poll in flight, if any
      this._names = new Set();   // named events the app listens to
      this._handlers = new Map(); // name -> Set of handlers from events: {name: fn} and on()
      this._topicOps = [];       // WebSocket subscribe/unsubscribe calls, replayed on reconnect
      this._pending = [];        // their promises, settled by 'subscribed' / 'error' in order
      this._resumeFence = null;  // a resume in flight on a re-subscribed WebSocket

      const ev = o.events;
      if (Array.isArray(ev)) ev.forEach((n) => this._names.add(String(n)));
      else if (ev && typeof ev === 'object') Object.keys(ev).forEach((n) => this.on(n, ev[n]));

      // Opening waits a tick so the caller holds the object before the first onState call.
      this._later(0, () => {
        this._setState('connecting', { previous: null });
        this._open();
      });
    }

    // ---- public API --------------------------------------------------------------------------

    // Listens to a named event (on every transport); returns a function that stops listening.
    on(name, handler) {
      name = String(name);
      if (typeof handler !== 'function')
        throw new TypeError('on(name, handler): handler must be a function');
      if (!this._handlers.has(name)) this._handlers.set(name, new Set());
      this._handlers.get(name).add(handler);
      if (!this._names.has(name)) {
        this._names.add(name);
        if (this._es) this._listenES(this._es, this._gen, name);
      }
      return () => { const set = this._handlers.get(name); if (set) set.delete(handler); };
    }

    close() {
      if (this.state === 'closed') return;
      this._stop();
      this._fail('connection closed');
      this._setState('closed', { reason: 'closed by the app' });
    }

    // WebSocket only: sends one JSON message to the route's `message` hook. Resolves once it is
    // handed to the socket; replies arrive through onMessage.
    send(message) {
      if (this.transport !== 'ws')
        return Promise.reject(new Error('send() needs the WebSocket transport (transport: "ws")'));
      if (!this._ws || this._ws.readyState !== 1)
        return Promise.reject(new Error('the WebSocket is not open (state: ' + this.state + ')'));
      let text;
      try { text = typeof message === 'string' ? message : JSON.stringify(message); }
      catch (e) { return Promise.reject(e); }
      this._ws.send(text);
      return Promise.resolve();
    }

    // WebSocket only: asks the route's topics hook to add (or drop) topics on the open
    // connection. Resolves with the stream's topic list, rejects with the server's error.
    subscribe(topics) { return this._topicOp('subscribe', topics); }
    unsubscribe(topics) { return this._topicOp('unsubscribe', topics); }

    // ---- state -------------------------------------------------------------------------------

    _setState(state, info) {
      const prev = this.state;
      this.state = state;
      const full = Object.assign({ transport: this.transport, previous: prev }, info);
      this._call('onState', state, full);
    }

    _call(name, a, b) {
      const fn = this.options[name];
      if (typeof fn !== 'function') return;
      try { fn.call(this, a, b); } catch (e) { setTimeout(() => { throw e; }, 0); }
    }

    _later(ms, fn) {
      const t = setTimeout(() => { this._timers.delete(t); fn(); }, ms);
      this._timers.add(t);
      return t;
    }

    _stop() {
      this._gen++;
      for (const t of this._timers) clearTimeout(t);
      this._timers.clear();
      this._healthyTimer = null;
      if (this._es) { this._es.close(); this._es = null; }
      if (this._ws) {
        const ws = this._ws;
        this._ws = null;
        try { ws.close(1000); } catch (e) { /* already closing */ }
      }
      if (this._pollCtl) { this._pollCtl.abort(); this._pollCtl = null; }
      this._stopCheck();
    }

    _pollUrl() {
      const query = { transport: 'poll', lastEventId: this.lastEventId };
      return withQuery(this._streamUrl(), query).href;
    }

    _fetchInit(signal) {
      return { cache: 'no-store', signal: signal,
               credentials: this.options.withCredentials ? 'include' : 'same-origin' };
    }

    _streamUrl() {
      const u = typeof this.url === 'function' ? this.url() : this.url;
      if (typeof u !== 'string') throw new TypeError('the url function must return a string');
      return u;
    }

    _open() {
      if (this.state === 'closed') return;
      const gen = ++this._gen;
      try {
        if (this.transport === 'sse') this._openSSE(gen);
        else if (this.transport === 'ws') this._openWS(gen);
        else this._pollOnce(gen);
      } catch (e) {
        // A bad URL, or an EventSource/WebSocket constructor that throws: nothing to retry.
        this._stop();
        this._setState('closed', { reason: 'cannot open the stream', error: message(e) });
      }
    }

    _active(info) {
      if (this.state !== 'active') this._setState('active', info);
      this._unhealthy();
      // Backoff (and the SSE failure count) start over only once a connection has held.
      this._healthyTimer = this._later(this.options.backoff.healthy, () => {
        this._healthyTimer = null;
        this._attempt = 0;
        this._sseFailures = 0;
      });
    }

    _unhealthy() {
      if (this._healthyTimer) {
        clearTimeout(this._healthyTimer);
        this._timers.delete(this._healthyTimer);
        this._healthyTimer = null;
      }
    }

    // Schedules the next attempt after the backoff delay (or the server's Retry-After, if
    // longer). info says why, and goes to onState('reconnecting').
    _retry(info, minDelay) {
      if (this.state === 'closed') return;
      this._gen++;
      this._unhealthy();
      const delay = Math.max(minDelay || 0, backoffDelay(this._attempt, this.options.backoff));
      const attempt = ++this._attempt;
      this.stats.reconnects++;
      this._setState('reconnecting', Object.assign({ attempt: attempt, delay: delay }, info));
      this._later(delay, () => this._open());
    }

    // Opens again at once: the id was dropped after a gap, or the transport changed.
    _reopenNow(info) {
      this._gen++;
      this._unhealthy();
      this.stats.reconnects++;
      this._setState('reconnecting', Object.assign({ attempt: this._attempt, delay: 0 }, info));
      this._later(0, () => this._open());
    }

    _fatal(info) {
      this._stop();
      this._fail(info.error || 'refused');
      this._setState('closed', info);
    }

    _fail(reason) {
      const pending = this._pending;
      this._pending = [];
      for (const p of pending) if (p.reject) p.reject(new Error(reason));
    }

    // ---- events from any transport -----------------------------------------------------------

    // Every transport ends here with {id, event, text|data, topic}.
    _deliver(raw, transport) {
      const name = raw.event || 'message';
      if (this._check) this._check.delivered = true;
      if (name === 'reset') {
        const info = { type: 'reset', transport: transport, lastEventId: this.lastEventId };
        const d = raw.data !== undefined ? raw.data : parseData(raw.text);
        if (d && typeof d === 'object' && d.reason) info.reason = d.reason;
        if (raw.id) this.lastEventId = raw.id;
        info.id = this.lastEventId;
        this._gap(info);
        return;
      }
      if (name === 'dropped') {
        const d = raw.data !== undefined ? raw.data : parseData(raw.text);
        this._gap(Object.assign({ type: 'dropped', transport: transport },
                                d && typeof d === 'object' ? d : {}));
        return;
      }
      if (raw.id && this.lastEventId && alreadySeen(raw.id, this.lastEventId)) {
        // Only possible around a change of transport; never hand the app an event twice.
        this.stats.duplicates++;
        return;
      }
      if (raw.id) this.lastEventId = raw.id;
      if (name !== 'message' && !this._names.has(name)) return;
      const text = raw.text !== undefined ? raw.text
        : typeof raw.data === 'string' ? raw.data : JSON.stringify(raw.data);
      const ev = {
        id: raw.id || null,
        event: name,
        data: raw.data !== undefined && typeof raw.data !== 'string' ? raw.data : parseData(text),
        text: text,
        topic: raw.topic,
        transport: transport,
      };
      this.stats.events++;
      this._call('onEvent', ev);
      const set = this._handlers.get(name);
      if (set) for (const fn of Array.from(set)) {
        try { fn.call(this, ev); } catch (e) { setTimeout(() => { throw e; }, 0); }
      }
    }

    _wants(name) {
      return name === 'message' || name === 'reset' || name === 'dropped' || this._names.has(name);
    }

    _gap(info) {
      this.stats.gaps++;
      this._call('onGap', info);
    }

    // The server no longer holds what followed our id (416 over HTTP, or a 400 for an id this
    // stream never issued, as after a Redis flush): report it and go on from now.
    _staleId(status, error, transport) {
      const old = this.lastEventId;
      this.lastEventId = null;
      this._gap({ type: 'reset', transport: transport, status: status, reason: error,
                  lastEventId: old, id: null });
      this._reopenNow({ reason: 'the last id cannot be resumed: continuing from now',
                        status: status });
    }

    // What an HTTP refusal means for the next step. Returns true when it was handled.
    _refused(status, error, retryAfter, transport) {
      if (status === 416 || (status === 400 && this.lastEventId)) {
        this._staleId(status, error, transport);
        return true;
      }
      if (status === 429 || status === 503) {
        this._retry({ reason: 'the server asked to wait', status: status, error: error },
                    retryAfter);
        return true;
      }
      if (status >= 400 && status < 500) {
        this._fatal({ reason: 'the server refused the stream', status: status, error: error });
        return true;
      }
      return false;
    }

    // EventSource and WebSocket do not say why they failed: ask the same URL with fetch and
    // read the status and the {"error": …} body. A stream that opens is hung up at once.
    async _probe(url) {
      const ctl = typeof AbortController === 'function' ? new AbortController() : null;
      const timer = ctl ? setTimeout(() => ctl.abort(), this.options.probeTimeout) : null;
      try {
        const res = await fetch(url, {
          headers: { Accept: 'text/event-stream' },
          cache: 'no-store',
          credentials: this.options.withCredentials ? 'include' : 'same-origin',
          signal: ctl ? ctl.signal : undefined,
        });
        if (res.ok) {
          if (ctl) ctl.abort();
          return { status: res.status };
        }
        return { status: res.status, error: await errorText(res), retryAfter: retryAfterMs(res) };
      } catch (e) {
        return { status: 0, error: message(e) };
      } finally {
        if (timer) clearTimeout(timer);
      }
    }

    // ---- Server-Sent Events ------------------------------------------------------------------

    _openSSE(gen) {
      // refusal=status: this client reads statuses (through _probe), so the server refuses
      // with 429/503 and Retry-After instead of the in-stream freshet-refused event it gives
      // a bare EventSource (docs/ROUTES.md).
      const url = withQuery(this._streamUrl(),
                            { lastEventId: this.lastEventId, refusal: 'status' }).href;
      const es = new EventSource(url, { withCredentials: !!this.options.withCredentials });
      this._es = es;
      let opened = false;
      es.onopen = () => {
        if (gen !== this._gen) return;
        opened = true;
        this._active({ transport: 'sse' });
      };
      // EventSource delivers a named event only to a listener for that name: 'message' covers
      // unnamed events, the control events are always wanted, the rest come from options.events.
      es.onmessage = (e) => this._onSSE(gen, e);
      this._listenES(es, gen, 'reset');
      this._listenES(es, gen, 'dropped');
      for (const n of this._names) this._listenES(es, gen, n);
      // Watched from the start: a proxy may hold the headers as well as the body.
      this._watchBuffering(gen);
      es.onerror = () => {
        if (gen !== this._gen) return;
        // The browser would reconnect by itself (CONNECTING) or has given up on a refusal
        // (CLOSED). Either way the client takes over, so backoff and jitter are its own.
        const refused = es.readyState === 2;
        es.close();
        this._es = null;
        this._gen++;
        this._sseFailed(url, opened, refused);
      };
    }

    _listenES(es, gen, name) {
      if (name === 'message' || name === 'error' || name === 'open') return;
      es.addEventListener(name, (e) => this._onSSE(gen, e));
    }

    _onSSE(gen, e) {
      if (gen !== this._gen) return;
      this._sseDelivered = true;
      this._deliver({ id: e.lastEventId || null, event: e.type, text: e.data }, 'sse');
    }

    // Only failures that point at the path count toward the fallback: a stream that ended
    // before it proved healthy, or a refusal the server (or a proxy) answered with a 5xx or a
    // response EventSource would not take. A server that cannot be reached at all is down for
    // every transport, so it is only waited for.
    async _sseFailed(url, opened, refused) {
      const gen = this._gen;
      this._unhealthy();
      this._stopCheck();
      let pathFault = opened;
      let info = { reason: opened ? 'the stream ended' : 'the stream could not open' };
      if (refused && !opened) {
        const p = await this._probe(url);
        if (gen !== this._gen || this.state === 'closed') return;
        if (this._refused(p.status, p.error, p.retryAfter, 'sse')) return;
        pathFault = p.status !== 0;
        info = { reason: 'the stream was refused', status: p.status || undefined, error: p.error };
      }
      if (pathFault) this._sseFailures++;
      if (this.options.transport === 'auto' && this._sseFailures >= this.options.fallbackAfter) {
        this._fallBack('SSE failed ' + this._sseFailures + ' times in a row', info);
        return;
      }
      this._retry(info);
    }

    _fallBack(reason, extra) {
      this.stats.fallbacks++;
      this.transport = 'poll';
      this._sseFailures = 0;
      const why = 'falling back to long-polling: ' + reason;
      this._reopenNow(Object.assign({}, extra, { reason: why }));
    }

    // A proxy that buffers the stream lets EventSource open (or not even that) and then delivers
    // nothing. While an SSE connection has delivered nothing, a long-poll from the same id asks,
    // every so often, whether anything was published meanwhile; if it answers with events SSE
    // does not deliver within a short grace, the stream is buffered and the client moves to
    // long-polling, starting with those events. A connection that has delivered an event is not
    // held back by a proxy, so its checks stop there.
    _watchBuffering(gen) {
      const wait = this.options.bufferedTimeout;
      if (this.options.transport !== 'auto' || !(wait > 0) || typeof fetch !== 'function') return;
      this._sseDelivered = false;
      this._checkWait = wait;
      const after = (ms) => this._later(ms, () => {
        if (gen !== this._gen || this._check || this._sseDelivered) return;
        this._runCheck(gen).then((again) => { if (again) after(again); });
      });
      after(wait);
    }

    async _runCheck(gen) {
      const ctl = new AbortController();
      const check = { ctl: ctl, delivered: false };
      this._check = check;
      const url = this._pollUrl();
      const timer = setTimeout(() => ctl.abort(), this.options.pollTimeout);
      let res, text;
      try {
        res = await fetch(url, this._fetchInit(ctl.signal));
        text = res.status === 200 ? await res.text() : '';
      } catch (e) {
        res = null;
      } finally {
        clearTimeout(timer);
      }
      if (this._check === check) this._check = null;
      if (gen !== this._gen || check.delivered || !res) return 0;
      if (res.status !== 200) {
        // Quiet (204) or refused: SSE is not shown to be missing anything. Ask again later,
        // less often each time, while the stream stays silent.
        this._checkWait = Math.min(this._checkWait * 2, this.options.bufferedTimeout * 8);
        return this._checkWait;
      }
      const parsed = parseSSE(text, this.lastEventId);
      // EventSource sees only the names it listens to: an answer holding nothing else proves
      // nothing, so ask again later.
      if (!parsed.events.some((e) => this._wants(e.event))) {
        this._checkWait = Math.min(this._checkWait * 2, this.options.bufferedTimeout * 8);
        return this._checkWait;
      }
      // Give SSE a moment to deliver what the poll saw, in case both were just in flight.
      const grace = Math.min(1000, Math.max(200, this.options.bufferedTimeout / 4));
      this._check = check;
      await new Promise((r) => this._later(grace, r));
      if (this._check === check) this._check = null;
      if (gen !== this._gen || check.delivered) return 0;
      if (this._es) { this._es.close(); this._es = null; }
      this._gen++;
      for (const e of parsed.events) this._deliver(e, 'poll');
      this._fallBack('SSE delivered nothing for ' + this.options.bufferedTimeout +
                     ' ms while a long-poll got events (a buffering proxy?)');
      return 0;
    }

    _stopCheck() {
      if (this._check) { this._check.ctl.abort(); this._check = null; }
    }

    // ---- long-polling ------------------------------------------------------------------------

    async _pollOnce(gen) {
      const url = this._pollUrl();
      const ctl = new AbortController();
      this._pollCtl = ctl;
      let timedOut = false;
      const timer = setTimeout(() => { timedOut = true; ctl.abort(); }, this.options.pollTimeout);
      // A poll is held until something happens; one the server has kept for a second has
      // passed auth and is waiting, so the connection is up.
      const held = this._later(1000, () => {
        if (gen === this._gen) this._active({ transport: 'poll' });
      });
      let res, text;
      try {
        res = await fetch(url, this._fetchInit(ctl.signal));
        text = res.status === 200 ? await res.text() : null;
      } catch (e) {
        res = null;
        text = message(e);
      } finally {
        clearTimeout(timer);
        clearTimeout(held);
        this._timers.delete(held);
      }
      if (gen !== this._gen || this.state === 'closed') return;
      this._pollCtl = null;
      if (!res && timedOut) {
        // Unanswered well past the server's poll_timeout: the request or its answer was lost on
        // the way (a proxy, a dropped keep-alive request). Not a failure of the server: ask again.
        this.stats.pollTimeouts++;
        this._later(0, () => { if (gen === this._gen) this._pollOnce(gen); });
        return;
      }
      if (!res) {
        this._retry({ reason: 'the poll failed', error: text });
        return;
      }
      if (res.status === 200 || res.status === 204) {
        this._active({ transport: 'poll' });
        // Where the next poll resumes, even from an empty answer: a client that had seen no
        // event yet then still loses nothing published before its next poll.
        const pos = res.headers && typeof res.headers.get === 'function' &&
          res.headers.get('Last-Event-ID');
        // An answered poll is proof enough that the server is fine.
        this._attempt = 0;
        if (res.status === 200) {
          const parsed = parseSSE(text, this.lastEventId);
          for (const e of parsed.events) {
            this._deliver(e, 'poll');
            if (gen !== this._gen) return; // the app closed it from a callback
          }
        }
        if (pos && gen === this._gen) this.lastEventId = pos;
        this._later(0, () => { if (gen === this._gen) this._pollOnce(gen); });
        return;
      }
      const error = await errorText(res);
      if (gen !== this._gen) return;
      if (this._refused(res.status, error, retryAfterMs(res), 'poll')) return;
      this._retry({ reason: 'the poll was answered ' + res.status, status: res.status,
                    error: error });
    }

    // ---- WebSocket ---------------------------------------------------------------------------

    _openWS(gen) {
      // A connection that changed its topics cannot resume through the URL (its id has another
      // shape than the route's first topic list): it re-subscribes first, then sends `resume`.
      const resubscribe = this._topicOps.length > 0;
      const u = toWs(withQuery(this._streamUrl(),
                               { lastEventId: resubscribe ? null : this.lastEventId }));
      const probeUrl = toHttp(withQuery(this._streamUrl(),
                                        { lastEventId: this.lastEventId, refusal: 'status' })).href;
      const ws = new WebSocket(u.href, ['freshet.v1']);
      this._ws = ws;
      let opened = false;
      ws.onopen = () => {
        if (gen !== this._gen) return;
        opened = true;
        if (resubscribe) {
          // The last reply tells the topic list; only then is it known whether the id fits it.
          const id = this.lastEventId;
          const ops = this._topicOps.slice();
          ops.forEach((op, i) => {
            const last = i === ops.length - 1;
            this._pending.push({
              op: op.type,
              internal: true,
              resolve: last ? (topics) => this._resumeAfterResubscribe(gen, id, topics) : null,
              // Events of those topics are lost to the page from here on.
              reject: (err) => this._gap({
                type: 'reset', transport: 'ws', lastEventId: id, id: this.lastEventId,
                reason: 'could not ' + op.type + ' ' + op.topics.join(', ') + ' again: ' +
                        err.message,
              }),
            });
            ws.send(JSON.stringify({ type: op.type, topics: op.topics }));
          });
        }
        this._active({ transport: 'ws' });
      };
      ws.onmessage = (e) => { if (gen === this._gen) this._onWS(e.data); };
      ws.onclose = async (e) => {
        if (gen !== this._gen) return;
        this._ws = null;
        this._gen++;
        this._unhealthy();
        this._resumeFence = null;
        this._fail('the WebSocket closed');
        if (!opened) {
          this._setState('reconnecting', { reason: 'checking why the WebSocket was refused' });
          const p = await this._probe(probeUrl);
          const g = this._gen;
          if (this.state === 'closed' || g !== this._gen) return;
          if (this._refused(p.status, p.error, p.retryAfter, 'ws')) return;
          this._retry({ reason: 'the WebSocket could not open', status: p.status || undefined,
                        error: p.error });
          return;
        }
        this._retry({ reason: 'the WebSocket closed', code: e.code, error: e.reason || undefined });
      };
    }

    _resumeAfterResubscribe(gen, id, topics) {
      if (gen !== this._gen || !this._ws || !id) return;
      const parts = parseId(id);
      if (!parts || !Array.isArray(topics) || parts.length !== topics.length) {
        // The id was taken before the last topic change (no event came after it), so it holds
        // positions for another topic list: what was published meanwhile cannot be asked for.
        if (this.lastEventId === id) this.lastEventId = null;
        this._gap({ type: 'reset', transport: 'ws', lastEventId: id, id: this.lastEventId,
                    reason: 'the last id predates the last topic change: it cannot be resumed' });
        return;
      }
      // The pong after it says the resume was taken; an error before it (and after the replies
      // to what was sent before it), that it was not.
      this._resumeFence = { id: id, before: new Set(this._pending) };
      this._ws.send(JSON.stringify({ type: 'resume', id: id }));
      this._ws.send(JSON.stringify({ type: 'ping' }));
    }

    _onWS(text) {
      let msg;
      try { msg = JSON.parse(text); } catch (e) { this._call('onMessage', text); return; }
      if (!msg || typeof msg !== 'object') { this._call('onMessage', msg); return; }
      if (typeof msg.type === 'string' && WS_CONTROL[msg.type]) {
        this._onControl(msg);
        return;
      }
      if (msg.v !== undefined && typeof msg.id === 'string' && 'topic' in msg && 'data' in msg) {
        const raw = { id: msg.id, event: msg.event || 'message', data: msg.data, topic: msg.topic };
        this._deliver(raw, 'ws');
        return;
      }
      this._call('onMessage', msg);
    }

    _onControl(msg) {
      switch (msg.type) {
        case 'reset':
          this._deliver({ id: msg.id, event: 'reset', data: { reason: msg.reason } }, 'ws');
          return;
        case 'dropped':
          this._gap({ type: 'dropped', transport: 'ws', dropped: msg.dropped, total: msg.total });
          return;
        case 'subscribed': {
          const p = this._pending.shift();
          if (p && p.resolve) p.resolve(msg.topics);
          return;
        }
        case 'pong':
          if (this._resumeFence) { this._resumeFence = null; return; }
          this._call('onMessage', msg);
          return;
        case 'error': {
          const fence = this._resumeFence;
          if (fence && !this._pending.some((p) => fence.before.has(p))) {
            // The re-subscribed connection could not resume (e.g. the Redis broker resumes only
            // through the URL): what was published meanwhile is lost to this page.
            this._resumeFence = null;
            if (this.lastEventId === fence.id) this.lastEventId = null;
            this._gap({ type: 'reset', transport: 'ws', reason: msg.error, lastEventId: fence.id,
                        id: this.lastEventId });
            return;
          }
          const p = this._pending.shift();
          if (p) { if (p.reject) p.reject(new Error(msg.error)); return; }
          this._call('onMessage', msg);
          return;
        }
      }
    }

    _topicOp(type, topics) {
      if (this.transport !== 'ws')
        return Promise.reject(new Error(type + '() needs the WebSocket transport ' +
                                        '(transport: "ws")'));
      if (!this._ws || this._ws.readyState !== 1)
        return Promise.reject(new Error('the WebSocket is not open (state: ' + this.state + ')'));
      const list = Array.isArray(topics) ? topics.map(String) : [String(topics)];
      return new Promise((resolve, reject) => {
        this._pending.push({
          op: type,
          resolve: (now) => { this._topicOps.push({ type: type, topics: list }); resolve(now); },
          reject: reject,
        });
        this._ws.send(JSON.stringify({ type: type, topics: list }));
      });
    }
  }

  function connect(url, options) {
    return new Connection(url, options);
  }

  return {
    version: VERSION,
    connect: connect,
    Connection: Connection,
    states: STATES.slice(),
    _internal: { backoffDelay: backoffDelay, parseSSE: parseSSE, alreadySeen: alreadySeen,
                 parseId: parseId },
  };
});
