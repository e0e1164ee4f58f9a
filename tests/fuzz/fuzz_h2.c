/* Fuzz target: HTTP/2 in cleartext (h2c with prior knowledge), bytes in → frames out, through
 * src/http/h2.c, nghttp2, the exchanges and the app (SSE streams, long-polls, publishes, static
 * files, /health), without TLS.
 *
 * How: as fuzz_http, a standalone worker (fr_worker_standalone) on a loop of its own with a real
 * listener on 127.0.0.1, its app saying h2c = true; each input goes over real loopback
 * connections, the loop run by hand between sends.
 *
 * Input: [flags] then up to two connection scripts separated by "@@CONN@@", sent one after the
 * other (a stream the first opens receives what the second publishes).
 *   flags bit 0     send each script in pieces, running the loop between them
 *   flags bits 1-5  piece size - 1 (1 to 32 bytes)
 *   flags bit 6     the scripts are sent as they are (no client preface in front)
 *   flags bit 7     end connections with a reset (SO_LINGER 0) instead of a FIN
 *
 * What a client receives is checked as an HTTP/2 client reads it:
 *   - with the preface sent, the bytes are whole frames (a frame cut by the end of the bytes is
 *     the connection ending mid-write), the first a SETTINGS on stream 0, none longer than the
 *     default SETTINGS_MAX_FRAME_SIZE, of the types a server sends;
 *   - HEADERS, DATA and RST_STREAM name a stream the client could have opened (odd, not 0);
 *     SETTINGS, PING and GOAWAY are on stream 0; nothing follows a GOAWAY but frames of streams
 *     at or below its last stream id, and further GOAWAYs;
 *   - without the preface a client that is no HTTP/1 client gets nothing or an HTTP/1 answer;
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "fuzz_common.h"
#include "fuzz_worker.h"
#include "server/worker.h"

#define MAX_CONNS 2
#define SEPARATOR "@@CONN@@"
#define PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

static fr_worker_t *W;
static uv_loop_t loop;
static uv_tcp_t listener;
static int port;
static char app_root[256];

static const char app_lua[] =
    "local freshet = require \"freshet\"\n"
    "local app = freshet.app {\n"
    "  h2c = true,\n"
    "  limits = { body = 4096, headers = 2048, h2_streams = 16, h2_streams_per_client = 20 },\n"
    "  replay = { events = 8, seconds = 60 },\n"
    "  tiers = { slow = { rate = 5, burst = 3, queue = 4, bytes = 4096, lag = 8 } },\n"
    "  cors = { \"http://ok.example\" },\n"
    "  budget = 200000,\n"
    "}\n"
    "app:stream(\"/sub/:topic\", \"routes/sub.lua\")\n"
    "app:stream(\"/tier/:topic\", \"routes/tier.lua\")\n"
    "app:publish(\"/pub/:topic\", \"routes/pub.lua\")\n"
    "app:static(\"/files\", \"public\")\n"
    "return app\n";

/* The topic from the path when it is one (non-empty, letters, digits and -_.), else "t". */
static const char topic_lua[] =
    "return function(req)\n"
    "  local t = req.params.topic\n"
    "  if #t == 0 or t:find(\"[^%w%-_.]\") then t = \"t\" end\n"
    "  return t\n"
    "end\n";

static const char sub_lua[] =
    "local topic = require \"routes.topic\"\n"
    "return { topics = function(req) return { topic(req) } end }\n";

static const char tier_lua[] =
    "local topic = require \"routes.topic\"\n"
    "return { topics = function(req) return { topic(req) } end,\n"
    "         tier = function() return \"slow\" end, on_slow = \"disconnect\" }\n";

static const char pub_lua[] =
    "local topic = require \"routes.topic\"\n"
    "local route = {}\n"
    "function route.publish(req, body)\n"
    "  if body:find(\"[%z\\r]\") then return nil, 400, \"no\" end\n"
    "  return { topic = topic(req), data = body, priority = req.headers[\"x-priority\"] == \"telemetry\"\n"
    "           and \"telemetry\" or nil }\n"
    "end\n"
    "return route\n";

static void write_file(const char *rel, const char *text) {
    fw_write_file(app_root, rel, text);
}

static void release_worker(void) {
    if (W && W->vm) {
        fr_vm_release(W->vm);
        W->vm = NULL;
    }
}

static void rm_tree(void) {
    fw_rm_tree(app_root, "/tmp/fr-fuzz-h2-");
}

static void on_connection(uv_stream_t *l, int status) {
    if (status == 0)
        fr_conn_accept(&W->http, l);
}

static void fresh_state(void) {
    fw_fresh_state(W);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    snprintf(app_root, sizeof app_root, "/tmp/fr-fuzz-h2-XXXXXX");
    if (!mkdtemp(app_root))
        abort();
    atexit(rm_tree);
    write_file("app.lua", app_lua);
    write_file("routes/topic.lua", topic_lua);
    write_file("routes/sub.lua", sub_lua);
    write_file("routes/tier.lua", tier_lua);
    write_file("routes/pub.lua", pub_lua);
    write_file("public/a.txt", "FZSTATIC a\n");
    if (!getenv("FR_FUZZ_LOG"))
        fr_log_set_level((fr_log_level_t)(FR_LOG_ERROR + 1));
    signal(SIGPIPE, SIG_IGN);
    char app[600];
    snprintf(app, sizeof app, "%s/app.lua", app_root);
    uv_loop_init(&loop);
    W = fr_worker_standalone(&loop, app);
    if (!W) {
        fprintf(stderr, "fuzz_h2: the app did not load\n");
        abort();
    }
    atexit(release_worker);
    port = fw_listen(&loop, &listener, on_connection);
    return 0;
}

/* ---- clients ------------------------------------------------------------------------------ */

typedef struct {
    int fd;
    fz_buf_t in;
    int eof;
} client_t;

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

static void client_open(client_t *c) {
    memset(c, 0, sizeof *c);
    c->fd = fw_connect(port);
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
            return;
        }
        off += (size_t)w;
        if (piece)
            pump(cs, n, 1);
    }
}

/* ---- reading frames as a client ----------------------------------------------------------- */

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void check_frames(const client_t *c) {
    const uint8_t *s = (const uint8_t *)c->in.p;
    size_t n = c->in.len, i = 0;
    int first = 1;
    int64_t goaway_last = -1;
    while (n - i >= 9) {
        uint32_t len = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        uint8_t type = s[i + 3];
        uint32_t sid = be32(s + i + 5) & 0x7fffffffu;
        fz_expect(len <= 16384, "a frame of %u bytes, past the default maximum", len);
        fz_expect(type <= 8 && type != 5 && type != 2, "a server frame of type %u", type);
        if (first)
            fz_expect(type == 4 && sid == 0, "the server's first frame is not SETTINGS");
        first = 0;
        if (n - i - 9 < len)
            return; /* cut by the connection's end */
        if (type == 0 || type == 1 || type == 3)
            fz_expect(sid != 0 && (sid & 1), "a frame of type %u on stream %u", type, sid);
        if (type == 4 || type == 6 || type == 7)
            fz_expect(sid == 0, "a frame of type %u on stream %u", type, sid);
        if (goaway_last >= 0 && type != 7)
            fz_expect(sid <= goaway_last, "stream %u after a GOAWAY with last stream %lld", sid,
                      (long long)goaway_last);
        if (type == 7 && len >= 8)
            goaway_last = be32(s + i + 9) & 0x7fffffffu;
        i += 9 + len;
    }
}

static const uint8_t *find(const uint8_t *h, size_t n, const char *needle) {
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(h + i, needle, k) == 0)
            return h + i;
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    const uint8_t *rest = data + 1;
    size_t left = size - 1;
    size_t piece = (flags & 1) ? (size_t)((flags >> 1) & 31) + 1 : 0;
    int raw = flags & 0x40, reset = flags & 0x80;

    const uint8_t *seg[MAX_CONNS];
    size_t seglen[MAX_CONNS], nseg = 0;
    while (nseg < MAX_CONNS) {
        const uint8_t *sep = nseg + 1 < MAX_CONNS ? find(rest, left, SEPARATOR) : NULL;
        seg[nseg] = rest;
        seglen[nseg] = sep ? (size_t)(sep - rest) : left;
        nseg++;
        if (!sep)
            break;
        left -= (size_t)(sep - rest) + 8;
        rest = sep + 8;
    }

    client_t cs[MAX_CONNS];
    for (size_t k = 0; k < nseg; k++) {
        size_t before = W->http.nconns;
        client_open(&cs[k]);
        for (int r = 0; r < 50 && W->http.nconns == before; r++)
            pump(cs, k + 1, 1);
        fz_expect(W->http.nconns == before + 1, "the server did not accept connection %zu", k);
        if (!raw)
            client_send(cs, k + 1, &cs[k], (const uint8_t *)PREFACE, sizeof PREFACE - 1, piece);
        client_send(cs, k + 1, &cs[k], seg[k], seglen[k], piece);
        pump(cs, k + 1, 4);
    }
    pump(cs, nseg, 4);

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
    fz_expect(fr_list_empty(&W->http.h2_dirty), "a closed connection is still to be flushed");
    fz_expect(W->http.h2_clients->table.count == 0,
              "%zu client addresses still count HTTP/2 streams after every client left",
              W->http.h2_clients->table.count);

    for (size_t k = 0; k < nseg; k++) {
        if (!raw) {
            check_frames(&cs[k]);
        } else if (cs[k].in.len > 0) {
            /* No preface: HTTP/1 answers it, unless the bytes were HTTP/2's after all. */
            int h2 = seglen[k] >= 24 && memcmp(seg[k], PREFACE, 24) == 0;
            if (h2)
                check_frames(&cs[k]);
            else
                fz_expect(cs[k].in.len >= 9 && memcmp(cs[k].in.p, "HTTP/1.", 7) == 0,
                          "a client without the preface got no HTTP/1 answer");
        }
        if (cs[k].fd >= 0) {
            struct linger lg = {1, 0};
            setsockopt(cs[k].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            close(cs[k].fd);
        }
        fz_buf_free(&cs[k].in);
    }
    fresh_state();
    return 0;
}
