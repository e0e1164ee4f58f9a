/* Fuzz target: the HTTP request path, bytes in → response bytes out (src/http, src/app,
 * src/stream, src/transport, with llhttp and the router).
 *
 * How: the harness builds a standalone worker (fr_worker_standalone: VM from an app file, a
 * memory broker, rate limits, the flush hook) on a loop of its own, with a real listener on
 * 127.0.0.1. Each input
 * is sent over real loopback connections, so every byte goes through libuv's read path and
 * fr_conn_accept exactly as in production; no seam in src/ is needed. The loop is run by hand
 * (UV_RUN_NOWAIT) between sends, so one input runs in well under a millisecond of server work.
 *
 * Input: [flags] then up to three connection scripts separated by "@@CONN@@". Connection k's
 * bytes are sent, and the loop run, before connection k+1's, so a stream opened by the first
 * receives what the second publishes.
 *   flags bit 0     send each script in pieces, running the loop between them
 *   flags bits 1-5  piece size - 1 (1 to 32 bytes)
 *   flags bit 6     half-close right after sending (shutdown(SHUT_WR)), before reading
 *   flags bit 7     end connections with a reset (SO_LINGER 0) instead of a FIN
 *
 * What a client receives is checked as a client would read it:
 *   - the bytes are a sequence of well-formed HTTP/1.1 responses (status line, header lines
 *     without control characters, Content-Length or chunked bodies) and nothing follows a
 *     response that said Connection: close;
 *   - statuses are ones freshet answers to client input; 500 only for the route made to fail;
 *   - application/json bodies are JSON; event-stream bodies hold only freshet's fields and no
 *     CR (an injected line would show here); WebSocket frames after a 101 are unmasked final
 *     frames, text frames JSON;
 *   - any other 200 body is one of the files the app serves (no path escapes the static dir);
 *   - once every client is gone, the worker holds no connection and no stream. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "fuzz_common.h"
#include "fuzz_worker.h"
#include "server/worker.h"

extern const char fr_client_js[];
extern const size_t fr_client_js_len;

#define MAX_CONNS 3
#define SEPARATOR "@@CONN@@"

static fr_worker_t *W;
static uv_loop_t loop;
static uv_tcp_t listener;
static int port;
static char app_root[256];

/* ---- the app under test ------------------------------------------------------------------- */

/* Every hook answers client input without a script error; the one way to get a 500 is the
 * x-boom header on /bad, so any other 500 is a defect. */
static const char app_lua[] =
    "local freshet = require \"freshet\"\n"
    "local app = freshet.app {\n"
    "  limits = { body = 4096, headers = 2048 },\n"
    "  replay = { events = 8, seconds = 60 },\n"
    "  tiers = { slow = { rate = 5, burst = 3, queue = 4, bytes = 4096, lag = 8 } },\n"
    "  cors = { \"http://ok.example\" },\n"
    "  budget = 200000,\n"
    "}\n"
    "app:stream(\"/sub/:topics\", \"routes/sub.lua\")\n"
    "app:stream(\"/multi/:a/:b\", \"routes/multi.lua\")\n"
    "app:stream(\"/tier/:t\", \"routes/tier.lua\")\n"
    "app:stream(\"/raw/:topic\", \"routes/raw.lua\")\n"
    "app:publish(\"/pub/:topic\", \"routes/pub.lua\")\n"
    "app:publish(\"/json/:topic\", \"routes/json.lua\")\n"
    "app:publish(\"/bad\", \"routes/bad.lua\")\n"
    "app:static(\"/files\", \"public\")\n"
    "return app\n";

/* What a topic must be (non-empty, UTF-8, no CR/LF/NUL), so hooks can keep only valid names:
 * a hook that hands the server an invalid topic gets 500, which here would be a false alarm. */
static const char valid_lua[] =
    "local function utf8ok(s)\n"
    "  local i, n = 1, #s\n"
    "  while i <= n do\n"
    "    local c = s:byte(i)\n"
    "    if c < 0x80 then i = i + 1 else\n"
    "      local need, lo, hi\n"
    "      if c >= 0xC2 and c <= 0xDF then need, lo, hi = 1, 0x80, 0xBF\n"
    "      elseif c == 0xE0 then need, lo, hi = 2, 0xA0, 0xBF\n"
    "      elseif (c >= 0xE1 and c <= 0xEC) or c == 0xEE or c == 0xEF then need, lo, hi = 2, 0x80, 0xBF\n"
    "      elseif c == 0xED then need, lo, hi = 2, 0x80, 0x9F\n"
    "      elseif c == 0xF0 then need, lo, hi = 3, 0x90, 0xBF\n"
    "      elseif c >= 0xF1 and c <= 0xF3 then need, lo, hi = 3, 0x80, 0xBF\n"
    "      elseif c == 0xF4 then need, lo, hi = 3, 0x80, 0x8F\n"
    "      else return false end\n"
    "      if i + need > n then return false end\n"
    "      local b = s:byte(i + 1)\n"
    "      if b < lo or b > hi then return false end\n"
    "      for k = 2, need do b = s:byte(i + k); if b < 0x80 or b > 0xBF then return false end end\n"
    "      i = i + need + 1\n"
    "    end\n"
    "  end\n"
    "  return true\n"
    "end\n"
    "return function(t) return #t > 0 and not t:find(\"[%z\\r\\n]\") and utf8ok(t) end\n";

/* Topics from the path, kept only when valid. */
static const char sub_lua[] =
    "local route = {}\n"
    "local valid = require \"routes.valid\"\n"
    "function route.auth(req)\n"
    "  if req.headers[\"x-deny\"] then\n"
    /* 500 and 503 are the server's own (a Lua error, a broker away): the checks below take
     * them as faults, so the app never picks them. */
    "    local st = tonumber(req.headers[\"x-deny\"]) or 401\n"
    "    if math.floor(st) == 500 or math.floor(st) == 503 then st = 403 end\n"
    "    return nil, st, req.headers[\"x-deny\"]\n"
    "  end\n"
    "  return { id = req.query.user }\n"
    "end\n"
    "function route.topics(req, who, change)\n"
    "  local list, seen = {}, {}\n"
    "  local source = req.params.topics\n"
    "  if change and type(change.topics) == \"table\" then\n"
    "    source = table.concat(change.topics, \",\")\n"
    "  end\n"
    "  for t in source:gmatch(\"[^,]+\") do\n"
    "    if valid(t) and not seen[t] and #list < 8 then list[#list + 1] = t; seen[t] = true end\n"
    "  end\n"
    "  if #list == 0 then list[1] = \"default\" end\n"
    "  return list\n"
    "end\n"
    "function route.filter(ev, who)\n"
    "  if ev.data == \"filter-boom\" then error(\"filter failed on purpose\") end\n"
    "  return ev.data ~= \"drop\"\n"
    "end\n"
    "function route.message(conn, msg, who)\n"
    "  if type(msg.echo) == \"string\" then return { echo = msg.echo } end\n"
    "  return nil\n"
    "end\n"
    "return route\n";

static const char multi_lua[] =
    "local route = {}\n"
    "local valid = require \"routes.valid\"\n"
    "function route.topics(req)\n"
    "  local a, b = req.params.a, req.params.b\n"
    "  if not valid(a) then a = \"a\" end\n"
    "  if not valid(b) or b == a then b = a .. \"-2\" end\n"
    "  return { a, b }\n"
    "end\n"
    "route.on_gap = \"reset\"\n"
    "return route\n";

static const char tier_lua[] =
    "local route = {}\n"
    "function route.topics(req)\n"
    "  local t = req.params.t\n"
    "  if not require(\"routes.valid\")(t) then t = \"t\" end\n"
    "  return { t }\n"
    "end\n"
    "function route.tier() return \"slow\" end\n"
    "function route.on_slow(topic) return topic:sub(1, 1) == \"c\" and \"conflate\" or \"drop\" end\n"
    "return route\n";

/* The path parameter as the topic, unchecked, as many apps write it: a name that is no topic
 * must get 400 (finding F6 was a 500 here). */
static const char raw_lua[] = "return { topics = function(req) return { req.params.topic } end }\n";

static const char pub_lua[] =
    "local route = {}\n"
    "function route.auth(req)\n"
    "  if req.headers[\"x-deny\"] then return nil, 403, \"no\" end\n"
    "  return { id = req.headers[\"x-user\"] }\n"
    "end\n"
    "function route.publish(req, body, who)\n"
    "  return { topic = req.params.topic, data = body,\n"
    "           event = req.headers[\"x-event\"], priority = req.headers[\"x-priority\"] }\n"
    "end\n"
    "function route.tier(req) if req.headers[\"x-tier\"] then return \"slow\" end end\n"
    "return route\n";

/* Publishes what a JSON body asks for, taking only strings from it. */
static const char json_lua[] =
    "local route = { body = \"json\" }\n"
    "local function str(v, d) if type(v) == \"string\" then return v end return d end\n"
    "function route.publish(req, body)\n"
    "  if type(body) ~= \"table\" then return nil, 422, \"want an object\" end\n"
    "  local list = body.events\n"
    "  if type(list) ~= \"table\" then list = { body } end\n"
    "  local out = {}\n"
    "  for i = 1, math.min(#list, 8) do\n"
    "    local e = list[i]\n"
    "    if type(e) ~= \"table\" then return nil, 400, \"events are objects\" end\n"
    "    out[#out + 1] = { topic = str(e.topic, req.params.topic), data = str(e.data, \"\"),\n"
    "                      event = str(e.event), priority = str(e.priority) }\n"
    "  end\n"
    "  if #out == 0 then return nil, 400, \"no events\" end\n"
    "  return out\n"
    "end\n"
    "return route\n";

static const char bad_lua[] =
    "local route = {}\n"
    "function route.publish(req, body)\n"
    "  if req.headers[\"x-boom\"] then error(\"publish failed on purpose\") end\n"
    "  return nil, 409, \"nothing here\"\n"
    "end\n"
    "return route\n";

/* Static files: what a 200 may carry. Outside the directory, a file a path escape would reach. */
static const struct {
    const char *path, *body;
} files[] = {
    {"public/index.html", "FZSTATIC index <html></html>\n"},
    {"public/a.txt", "FZSTATIC a\n"},
    {"public/sub dir/b.js", "FZSTATIC b\n"},
    {"public/sub/index.html", "FZSTATIC sub index\n"},
    {"secret.txt", "SECRET outside the static directory\n"},
};

static void write_file(const char *rel, const char *text) {
    fw_write_file(app_root, rel, text);
}

/* At exit the VM is freed as the server frees it at shutdown: what Lua modules allocate outside
 * the Lua heap (cjson's buffers) is released by their finalizers, not left for LeakSanitizer. */
static void release_worker(void) {
    if (W && W->vm) {
        fr_vm_release(W->vm);
        W->vm = NULL;
    }
}

static void rm_tree(void) {
    fw_rm_tree(app_root, "/tmp/fr-fuzz-http-");
}

/* ---- the worker --------------------------------------------------------------------------- */

static void on_connection(uv_stream_t *l, int status) {
    if (status == 0)
        fr_conn_accept(&W->http, l);
}

/* Each input starts from an empty hub and fresh rate limits: results do not depend on the
 * inputs that ran before, and memory does not grow with the run. */
static void fresh_state(void) {
    fw_fresh_state(W);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    snprintf(app_root, sizeof app_root, "/tmp/fr-fuzz-http-XXXXXX");
    if (!mkdtemp(app_root))
        abort();
    atexit(rm_tree);
    write_file("app.lua", app_lua);
    write_file("routes/valid.lua", valid_lua);
    write_file("routes/sub.lua", sub_lua);
    write_file("routes/multi.lua", multi_lua);
    write_file("routes/tier.lua", tier_lua);
    write_file("routes/raw.lua", raw_lua);
    write_file("routes/pub.lua", pub_lua);
    write_file("routes/json.lua", json_lua);
    write_file("routes/bad.lua", bad_lua);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        write_file(files[i].path, files[i].body);
    char link[600];
    snprintf(link, sizeof link, "%s/public/link.txt", app_root);
    if (symlink("../secret.txt", link) != 0)
        abort();

    /* Quiet unless asked: a log line per connection would dominate the run time. */
    if (!getenv("FR_FUZZ_LOG"))
        fr_log_set_level((fr_log_level_t)(FR_LOG_ERROR + 1));
    signal(SIGPIPE, SIG_IGN);

    char app[600];
    snprintf(app, sizeof app, "%s/app.lua", app_root);
    uv_loop_init(&loop);
    W = fr_worker_standalone(&loop, app);
    if (!W) {
        fprintf(stderr, "fuzz_http: the app did not load\n");
        abort();
    }
    atexit(release_worker);

    port = fw_listen(&loop, &listener, on_connection);
    return 0;
}

/* ---- clients ------------------------------------------------------------------------------ */

#define MAX_REQUESTS 256

typedef struct {
    int fd;
    fz_buf_t in; /* everything the server sent */
    int eof;
    /* Which of the requests sent on this connection were HEAD: their answers carry a
     * Content-Length and no body, so a client must know the method to read them. */
    uint8_t head[MAX_REQUESTS];
    size_t nrequests;
} client_t;

/* The methods of the requests in what a client sent, read with llhttp as the server reads them
 * (same parser, same defaults). */
static int on_req_headers(llhttp_t *p) {
    client_t *c = p->data;
    if (c->nrequests < MAX_REQUESTS)
        c->head[c->nrequests++] = p->method == HTTP_HEAD;
    return 0;
}

static void track_requests(client_t *c, const uint8_t *data, size_t len) {
    static llhttp_settings_t settings;
    static int ready;
    if (!ready) {
        llhttp_settings_init(&settings);
        settings.on_headers_complete = on_req_headers;
        ready = 1;
    }
    llhttp_t parser;
    llhttp_init(&parser, HTTP_REQUEST, &settings);
    parser.data = c;
    c->nrequests = 0;
    llhttp_execute(&parser, (const char *)data, len);
}

static void client_read(client_t *c) {
    fw_recv(c->fd, &c->in, &c->eof);
}

static void pump(client_t *cs, size_t n, int rounds) {
    for (int r = 0; r < rounds; r++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        for (size_t i = 0; i < n; i++)
            client_read(&cs[i]);
    }
}

static int client_open(client_t *c) {
    memset(c, 0, sizeof *c);
    c->fd = fw_connect(port);
    return 0;
}

static void client_send(client_t *cs, size_t n, client_t *c, const uint8_t *p, size_t len,
                        size_t piece) {
    size_t off = 0;
    while (off < len) {
        size_t k = piece && len - off > piece ? piece : len - off;
        ssize_t w = send(c->fd, p + off, k, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                pump(cs, n, 1);
                continue;
            }
            return; /* the server closed: the rest is never read */
        }
        off += (size_t)w;
        if (piece)
            pump(cs, n, 1);
    }
}

/* ---- reading responses as a client -------------------------------------------------------- */

static const char *find(const char *h, size_t n, const char *needle) {
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(h + i, needle, k) == 0)
            return h + i;
    return NULL;
}

/* The value of a header in a head block, or NULL; *vl its length. Names compare
 * case-insensitively. */
static const char *header(const char *head, size_t n, const char *name, size_t *vl) {
    size_t k = strlen(name);
    const char *p = memchr(head, '\n', n);
    while (p && (size_t)(p + 1 - head) < n) {
        const char *line = p + 1;
        const char *end = find(line, n - (size_t)(line - head), "\r\n");
        if (!end)
            return NULL;
        if ((size_t)(end - line) > k && line[k] == ':' && strncasecmp(line, name, k) == 0) {
            const char *v = line + k + 1;
            while (v < end && *v == ' ')
                v++;
            *vl = (size_t)(end - v);
            return v;
        }
        p = end + 1;
    }
    return NULL;
}

static int status_allowed(int st, int boom) {
    static const int ok[] = {100, 101, 200, 201, 204, 400, 401, 403, 404, 405, 406,
                             409, 413, 414, 416, 422, 426, 429, 431};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (ok[i] == st)
            return 1;
    /* An auth hook may reject with any status from 400 to 599 it likes (x-deny here). */
    if (st >= 400 && st <= 599 && st != 500 && st != 503)
        return 1;
    return st == 500 && boom;
}

static void check_event_stream(const char *body, size_t n, const char *what) {
    const char *bad = fz_sse_lines_ok(body, n);
    if (bad) {
        fz_dump("event stream", body, n);
        fz_fail("%s: %s", what, bad);
    }
    fz_sse_t p = {0};
    fz_sse_feed(&p, body, n);
    fz_expect(p.other == 0 && p.bad_retry == 0, "%s: a client reads fields freshet never sends",
              what);
    fz_sse_free(&p);
}

static int known_body(const char *b, size_t n) {
    if (n == 0)
        return 1; /* HEAD */
    if (n == fr_client_js_len && memcmp(b, fr_client_js, n) == 0)
        return 1;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        if (strncmp(files[i].path, "public/", 7) == 0 && strlen(files[i].body) == n &&
            memcmp(files[i].body, b, n) == 0)
            return 1;
    }
    return 0;
}

/* Server frames after a 101: unmasked, final (the server never fragments), known opcodes,
 * text that is UTF-8 JSON, nothing after a close. A frame cut by the end of the bytes is the
 * connection ending mid-write and is not judged. */
static void check_ws_frames(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (n - i < 2)
            return;
        uint8_t b0 = (uint8_t)s[i], b1 = (uint8_t)s[i + 1];
        int op = b0 & 0x0F;
        fz_expect((b0 & 0xF0) == 0x80, "a server frame that is not final or has RSV bits");
        fz_expect(!(b1 & 0x80), "a masked server frame");
        fz_expect(op == 1 || op == 8 || op == 9 || op == 10, "server frame with opcode %d", op);
        uint64_t len = b1 & 0x7F;
        size_t hl = 2;
        if (len == 126) {
            if (n - i < 4)
                return;
            len = (uint64_t)(uint8_t)s[i + 2] << 8 | (uint8_t)s[i + 3];
            hl = 4;
        } else if (len == 127) {
            if (n - i < 10)
                return;
            len = 0;
            for (int k = 0; k < 8; k++)
                len = len << 8 | (uint8_t)s[i + 2 + k];
            hl = 10;
        }
        if (n - i - hl < len)
            return;
        const char *pl = s + i + hl;
        if (op == 1) {
            if (!fz_utf8_ok(pl, (size_t)len) || !fz_json_valid(pl, (size_t)len)) {
                fz_dump("text frame", pl, (size_t)len);
                fz_fail("a WebSocket text frame that is not JSON");
            }
        } else if (op == 8) {
            fz_expect(len <= 125, "a close frame over 125 bytes");
            if (len >= 2)
                fz_expect(fz_utf8_ok(pl + 2, (size_t)len - 2), "a close reason that is not UTF-8");
            fz_expect(len != 1, "a close frame with one byte");
            i += hl + (size_t)len;
            fz_expect(i == n, "bytes after the server's close frame");
            return;
        }
        i += hl + (size_t)len;
    }
}

/* Decodes a chunked body from s; returns the bytes used, or n when the body is cut off by the
 * end of the connection (a stream whose client left). */
static size_t read_chunked(const char *s, size_t n, fz_buf_t *out, int *complete) {
    size_t i = 0;
    *complete = 0;
    for (;;) {
        const char *eol = find(s + i, n - i, "\r\n");
        if (!eol)
            return n;
        size_t size = 0, digits = 0;
        for (const char *p = s + i; p < eol; p++, digits++) {
            char c = *p;
            int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            fz_expect(v >= 0, "a chunk size line that is not lower-case hex");
            size = size * 16 + (size_t)v;
        }
        fz_expect(digits > 0 && digits < 16, "a malformed chunk size line");
        i = (size_t)(eol - s) + 2;
        if (size == 0) {
            if (n - i < 2)
                return n;
            fz_expect(s[i] == '\r' && s[i + 1] == '\n', "no CRLF after the last chunk");
            *complete = 1;
            return i + 2;
        }
        if (n - i < size + 2) {
            fz_put(out, s + i, n - i < size ? n - i : size);
            return n;
        }
        fz_put(out, s + i, size);
        fz_expect(s[i + size] == '\r' && s[i + size + 1] == '\n', "chunk data not followed by CRLF");
        i += size + 2;
    }
}

static void check_responses(const client_t *c, int boom, int cut) {
    const char *s = c->in.p ? c->in.p : "";
    size_t n = c->in.len, i = 0, answered = 0;
    while (i < n) {
        const char *end = find(s + i, n - i, "\r\n\r\n");
        if (!end) {
            /* A reset may cut a response anywhere; otherwise the head is always whole. */
            if (cut)
                return;
            fz_dump("bytes", s + i, n - i);
            fz_fail("a response head that never ends");
        }
        const char *head = s + i;
        size_t hl = (size_t)(end - head) + 4;
        fz_expect(hl > 12 && memcmp(head, "HTTP/1.1 ", 9) == 0 && head[12] == ' ',
                  "not an HTTP/1.1 status line");
        int st = (head[9] - '0') * 100 + (head[10] - '0') * 10 + (head[11] - '0');
        if (!status_allowed(st, boom)) {
            fz_dump("response", head, n - i < 600 ? n - i : 600);
            fz_fail("status %d", st);
        }
        /* Header lines: a token, a colon, a value of visible characters, spaces and tabs. */
        for (size_t k = 0; k < hl - 2; k++) {
            unsigned char ch = (unsigned char)head[k];
            if (ch == '\r') {
                fz_expect(head[k + 1] == '\n', "a bare CR in the response head");
                k++;
                continue;
            }
            fz_expect(ch >= 0x20 || ch == '\t', "a control character in the response head");
            fz_expect(ch != 0x7f, "DEL in the response head");
        }
        i += hl;
        size_t vl;
        const char *conn = header(head, hl, "connection", &vl);
        int closes = conn && vl == 5 && strncasecmp(conn, "close", 5) == 0;
        if (st == 100)
            continue;
        int head_request = answered < c->nrequests && c->head[answered];
        answered++;
        if (st == 101) {
            check_ws_frames(s + i, n - i);
            return;
        }
        const char *ct = header(head, hl, "content-type", &vl);
        size_t ctl = ct ? vl : 0;
        int sse = ct && ctl >= 17 && strncasecmp(ct, "text/event-stream", 17) == 0;
        int json = ct && ctl >= 16 && strncasecmp(ct, "application/json", 16) == 0;
        int metrics = ct && ctl >= 10 && strncasecmp(ct, "text/plain", 10) == 0 &&
                      find(ct, ctl, "version=0.0.4");
        const char *cl = header(head, hl, "content-length", &vl);
        const char *te = header(head, hl, "transfer-encoding", &vl);
        fz_buf_t body = {0};
        int complete = 1;
        if (cl && head_request && !(closes && st >= 400 && n - i == strtoul(cl, NULL, 10))) {
            /* A HEAD answer: the length of the body it would have had, and no body. (An error
             * that ends the connection, 431 for a HEAD whose head grew too long, comes before
             * the request is whole: it may carry its body.) */
        } else if (cl) {
            size_t len = strtoul(cl, NULL, 10);
            if (n - i < len) {
                if (cut)
                    return;
                fz_fail("a response body shorter than its Content-Length (%zu of %zu)", n - i,
                        len);
            }
            fz_put(&body, s + i, len);
            i += len;
        } else if (te) {
            i += read_chunked(s + i, n - i, &body, &complete);
        } else {
            /* HTTP/1.0 stream: the body runs to the end of the connection. */
            fz_expect(st == 200 && sse, "a response without a length that is not a stream");
            fz_put(&body, s + i, n - i);
            i = n;
            complete = 0;
        }
        const char *b = body.p ? body.p : "";
        if (sse)
            check_event_stream(b, body.len, "event stream");
        else if (json && body.len && !fz_json_valid(b, body.len)) {
            fz_dump("body", b, body.len);
            fz_fail("an application/json body that is not JSON");
        } else if (st == 200 && !json && !metrics && !known_body(b, body.len)) {
            fz_dump("body", b, body.len);
            fz_fail("a 200 with a body that is none of the served files");
        }
        fz_buf_free(&body);
        if (!complete)
            return;
        if (closes && i < n) {
            fz_dump("after close", s + i, n - i);
            fz_fail("bytes after a response that said Connection: close");
        }
    }
}

/* ---- one input ---------------------------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    const uint8_t *rest = data + 1;
    size_t left = size - 1;
    size_t piece = (flags & 1) ? (size_t)((flags >> 1) & 31) + 1 : 0;
    int half_close = flags & 0x40, reset = flags & 0x80;

    const uint8_t *seg[MAX_CONNS];
    size_t seglen[MAX_CONNS], nseg = 0;
    while (nseg < MAX_CONNS) {
        const uint8_t *sep = NULL;
        for (size_t i = 0; nseg + 1 < MAX_CONNS && i + 8 <= left; i++) {
            if (memcmp(rest + i, SEPARATOR, 8) == 0) {
                sep = rest + i;
                break;
            }
        }
        seg[nseg] = rest;
        seglen[nseg] = sep ? (size_t)(sep - rest) : left;
        nseg++;
        if (!sep)
            break;
        left -= (size_t)(sep - rest) + 8;
        rest = sep + 8;
    }
    int boom = find((const char *)data, size, "x-boom") || find((const char *)data, size, "X-Boom") ||
               find((const char *)data, size, "X-BOOM");
    if (!boom) {
        /* Header names are case-insensitive: look the slow way only when needed. */
        for (size_t i = 0; i + 6 <= size && !boom; i++)
            boom = strncasecmp((const char *)data + i, "x-boom", 6) == 0;
    }

    client_t cs[MAX_CONNS];
    uint64_t first_id = W->http.next_id;
    for (size_t k = 0; k < nseg; k++) {
        client_open(&cs[k]);
        for (int r = 0; r < 50 && W->http.next_id < first_id + k + 1; r++)
            pump(cs, k + 1, 1);
        fz_expect(W->http.next_id == first_id + k + 1, "the server did not accept connection %zu",
                  k);
        track_requests(&cs[k], seg[k], seglen[k]);
        client_send(cs, k + 1, &cs[k], seg[k], seglen[k], piece);
        if (half_close)
            shutdown(cs[k].fd, SHUT_WR);
        pump(cs, k + 1, 4);
    }
    pump(cs, nseg, 4);

    /* Leave: every client closes its side, then reads until the server closes too. */
    for (size_t k = 0; k < nseg; k++) {
        if (reset) {
            struct linger lg = {1, 0};
            setsockopt(cs[k].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            close(cs[k].fd);
            cs[k].fd = -1;
        } else {
            shutdown(cs[k].fd, SHUT_WR);
        }
    }
    uint64_t leave_ns = fw_now_ns();
    for (int r = 0; fw_still_busy(W, r, leave_ns); r++)
        pump(cs, nseg, 1);
    pump(cs, nseg, 2);
    fz_expect(W->http.nconns == 0, "%zu connections still open after every client left",
              W->http.nconns);
    fz_expect(W->streams.count == 0, "%zu streams still counted after every client left",
              W->streams.count);
    fz_expect(fr_list_empty(&W->streams.all), "a stream outlived its connection");
    fz_expect(fr_list_empty(&W->streams.pending) && fr_list_empty(&W->streams.idle) &&
                  fr_list_empty(&W->streams.polls),
              "a freed stream is still listed");

    for (size_t k = 0; k < nseg; k++) {
        check_responses(&cs[k], boom, reset != 0);
        if (cs[k].fd >= 0) {
            /* Everything is read: close with a reset, so no client port waits in TIME_WAIT (a
             * long run makes far more connections than there are ephemeral ports). */
            struct linger lg = {1, 0};
            setsockopt(cs[k].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            close(cs[k].fd);
        }
        fz_buf_free(&cs[k].in);
    }

    fresh_state();
    return 0;
}
