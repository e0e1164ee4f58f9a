#include "transport/ws.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/buf.h"
#include "base/json.h"
#include "base/log.h"
#include "base/util.h"
#include "codec/ws.h"
#include "lua/hooks.h"
#include "lua/task.h"

static const char ping_frame[2] = {(char)0x89, 0x00};

/* What a WebSocket stream keeps beside the stream. Owned by the stream (tp_state). */
typedef struct {
    fr_ws_parser_t parser;
    int req_ref;         /* the request table, kept for topics hooks a subscribe calls later */
    char accept[29];     /* the handshake's accept key, until the 101 goes out */
    int proto;           /* the client offered the freshet.v1 subprotocol */
    int ping_pending;    /* a ping went out and no pong came back yet */
    int close_set;       /* close_code and close_text were chosen by the one who closed */
    uint16_t close_code; /* 0: an empty close payload (answering an empty close) */
    const char *close_text;
    /* A hook that waits (a message or a topics change asking the backend): what the client
     * sends meanwhile is held, so replies keep the order of the messages. */
    fr_task_t *task;
    void (*reader)(fr_stream_t *s); /* reads the hook's results */
    const char *hook;
    fr_buf_t held;                  /* owned: input behind the waiting message */
} ws_state_t;

/* ---- the handshake ------------------------------------------------------------------------ */

/* 1 when a comma-separated header value lists `token` (case-insensitive). */
static int header_has_token(const char *value, const char *token) {
    size_t tl = strlen(token);
    for (const char *p = value; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',')
            p++;
        const char *end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if ((size_t)(end - start) == tl && strncasecmp(start, token, tl) == 0)
            return 1;
    }
    return 0;
}

int fr_ws_wants_upgrade(const fr_request_t *req) {
    const char *up = fr_request_header(req, "upgrade");
    return up && header_has_token(up, "websocket");
}

int fr_ws_handshake(const fr_request_t *req, const fr_config_t *cfg, int req_ref, void **state,
                    fr_ws_refusal_t *why) {
    const char *conn = fr_request_header(req, "connection");
    const char *version = fr_request_header(req, "sec-websocket-version");
    const char *key = fr_request_header(req, "sec-websocket-key");
    char accept[29];
    why->headers = NULL;
    if (strcmp(req->method, "GET") != 0 || req->http_major != 1 || req->http_minor < 1 || !conn ||
        !header_has_token(conn, "upgrade")) {
        why->status = 400;
        why->message = "a WebSocket upgrade is an HTTP/1.1 GET with Connection: Upgrade and "
                       "Upgrade: websocket";
        return -1;
    }
    if (!version || strcmp(version, "13") != 0) {
        why->status = 426;
        why->message = "this server speaks WebSocket version 13";
        why->headers = "Sec-WebSocket-Version: 13\r\n";
        return -1;
    }
    if (!key || fr_ws_accept_key(key, strlen(key), accept) < 0) {
        why->status = 400;
        why->message = "Sec-WebSocket-Key must be 16 bytes in base64";
        return -1;
    }
    /* Browsers send Origin; when the app lists allowed origins, a page from elsewhere cannot
     * open a socket with the user's cookies (cross-site WebSocket hijacking). */
    const char *origin = fr_request_header(req, "origin");
    if (origin && cfg->ncors > 0 && !fr_config_cors_allows(cfg, origin)) {
        why->status = 403;
        why->message = "this origin may not open a WebSocket here";
        return -1;
    }
    const char *protos = fr_request_header(req, "sec-websocket-protocol");
    ws_state_t *ws = fr_calloc(1, sizeof *ws);
    fr_ws_parser_init(&ws->parser, cfg->max_body);
    memcpy(ws->accept, accept, sizeof accept);
    ws->proto = protos && header_has_token(protos, "freshet.v1");
    ws->req_ref = req_ref;
    *state = ws;
    return 0;
}

void fr_ws_state_discard(void *state, lua_State *L) {
    ws_state_t *ws = state;
    if (!ws)
        return;
    if (ws->task)
        fr_task_cancel(ws->task);
    fr_buf_free(&ws->held);
    luaL_unref(L, LUA_REGISTRYINDEX, ws->req_ref);
    fr_ws_parser_close(&ws->parser);
    free(ws);
}

static void ws_free(fr_stream_t *s) {
    fr_ws_state_discard(s->tp_state, s->vm->L);
    s->tp_state = NULL;
}

static void ws_begin(fr_stream_t *s) {
    ws_state_t *ws = s->tp_state;
    char headers[256];
    snprintf(headers, sizeof headers,
             "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s",
             ws->accept, ws->proto ? "Sec-WebSocket-Protocol: freshet.v1\r\n" : "");
    fr_head_t head = {101, NULL, headers, -1};
    fr_stream_head(s, &head);
}

/* ---- frames ------------------------------------------------------------------------------- */

static char *frame(int opcode, const char *payload, size_t len, size_t *out_len) {
    uint8_t h[10];
    size_t hl = fr_ws_header(h, opcode, len, 1);
    char *f = fr_malloc(hl + len);
    memcpy(f, h, hl);
    if (len)
        memcpy(f + hl, payload, len);
    *out_len = hl + len;
    return f;
}

static char *text_frame(const char *payload, size_t len, size_t *out_len) {
    return frame(FR_WS_OP_TEXT, payload, len, out_len);
}

/* The close code for a stream ending for `reason` (fr_stream_t.end_reason). */
static uint16_t close_code(const char *reason, const char **text) {
    if (reason && strcmp(reason, "shutdown") == 0) {
        *text = "server restarting: reconnect with your last id";
        return FR_WS_CLOSE_GOING_AWAY;
    }
    if (reason && strcmp(reason, "error") == 0) {
        *text = "internal error";
        return FR_WS_CLOSE_INTERNAL;
    }
    if (reason && strcmp(reason, "timeout") == 0) {
        *text = "no pong: connection presumed dead";
        return FR_WS_CLOSE_GOING_AWAY;
    }
    *text = "too far behind: reconnect with your last id to resume";
    return FR_WS_CLOSE_TRY_AGAIN;
}

/* {"v":1,"topic":…,"id":…,"event":…,"data":…} as a text frame. */
static char *envelope(const fr_event_t *ev, const char *id, size_t *len) {
    fr_buf_t b = {0};
    fr_buf_reserve(&b, 256 + ev->data_len);
    fr_buf_put(&b, "{\"v\":1,\"topic\":", 15);
    fr_json_put_string(&b, ev->topic, strlen(ev->topic));
    fr_buf_put(&b, ",\"id\":", 6);
    fr_json_put_string(&b, id, strlen(id));
    if (ev->name) {
        fr_buf_put(&b, ",\"event\":", 9);
        fr_json_put_string(&b, ev->name, strlen(ev->name));
    }
    fr_buf_put(&b, ",\"data\":", 8);
    if (ev->json)
        fr_buf_put(&b, ev->data, ev->data_len);
    else
        fr_json_put_string(&b, ev->data, ev->data_len);
    fr_buf_put(&b, "}", 1);
    char *f = text_frame(b.p, b.len, len);
    fr_buf_free(&b);
    return f;
}

/* Built once, by whichever worker needs it first, and published on the event with a
 * compare-and-swap (the length travels with the bytes). */
static const fr_ws_blob_t *event_blob(fr_event_t *ev) {
    fr_ws_blob_t *f = __atomic_load_n(&ev->ws, __ATOMIC_ACQUIRE);
    if (f)
        return f;
    char id[FR_ID_MAX_LEN];
    fr_id_format(ev->id, id);
    size_t n;
    char *bytes = envelope(ev, id, &n);
    fr_ws_blob_t *made = fr_malloc(sizeof *made + n);
    made->len = n;
    memcpy(made->bytes, bytes, n);
    free(bytes);
    fr_ws_blob_t *expected = NULL;
    /* Another worker may have built it first: keep theirs. */
    if (__atomic_compare_exchange_n(&ev->ws, &expected, made, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE))
        return made;
    free(made);
    return expected;
}

const char *fr_ws_event_frame(fr_event_t *ev, size_t *len) {
    const fr_ws_blob_t *f = event_blob(ev);
    *len = f->len;
    return f->bytes;
}

char *fr_ws_event_frame_with_id(const fr_event_t *ev, const char *id, size_t *len) {
    return envelope(ev, id, len);
}

static void ws_frame(fr_stream_t *s, size_t index, fr_event_t *ev, fr_item_t *it) {
    (void)index;
    if (s->ntopics == 1) {
        const fr_ws_blob_t *f = event_blob(ev);
        it->shared = f->bytes;
        it->shared_len = (uint32_t)f->len;
        return;
    }
    char *ids = fr_malloc(fr_stream_positions_max(s));
    fr_stream_positions(s, ids);
    size_t len;
    it->own = envelope(ev, ids, &len);
    it->own_len = (uint32_t)len;
    free(ids);
}

static char *ws_dropped(fr_stream_t *s, size_t *len) {
    char buf[160];
    int n = snprintf(buf, sizeof buf,
                     "{\"v\":1,\"type\":\"dropped\",\"dropped\":%lu,\"total\":{\"telemetry\":%lu,"
                     "\"normal\":%lu}}",
                     (unsigned long)s->out.unreported, s->out.dropped[FR_PRIO_TELEMETRY],
                     s->out.dropped[FR_PRIO_NORMAL]);
    s->out.unreported = 0;
    return text_frame(buf, (size_t)n, len);
}

static void send_json(fr_stream_t *s, const char *json, size_t n) {
    size_t len;
    char *f = text_frame(json, n, &len);
    fr_stream_send(s, f, len);
}

static void ws_reset(fr_stream_t *s) {
    char *ids = fr_malloc(fr_stream_positions_max(s));
    fr_stream_positions(s, ids);
    fr_buf_t b = {0};
    fr_buf_put(&b, "{\"v\":1,\"type\":\"reset\",\"id\":", 27);
    fr_json_put_string(&b, ids, strlen(ids));
    static const char tail[] = ",\"reason\":\"the last id is older than the replay window\"}";
    fr_buf_put(&b, tail, sizeof tail - 1);
    send_json(s, b.p, b.len);
    fr_buf_free(&b);
    free(ids);
}

/* Ends the stream with a close frame (code 0: an empty close payload). */
static void ws_close(fr_stream_t *s, uint16_t code, const char *text, const char *why) {
    ws_state_t *ws = s->tp_state;
    if (s->ending || s->detached)
        return;
    ws->close_set = 1;
    ws->close_code = code;
    ws->close_text = text;
    if (!s->end_reason)
        s->end_reason = why;
    fr_stream_end(s, 0);
}

static void ws_finish(fr_stream_t *s, uint64_t retry_ms) {
    (void)retry_ms; /* a WebSocket client reconnects on its own schedule */
    ws_state_t *ws = s->tp_state;
    if (!s->end_reason)
        s->end_reason = "shutdown";
    if (!ws->close_set)
        ws->close_code = close_code(s->end_reason, &ws->close_text);
    size_t len;
    char *f;
    if (ws->close_code == 0) {
        f = fr_malloc(2);
        f[0] = (char)0x88;
        f[1] = 0;
        len = 2;
    } else {
        uint8_t p[125];
        size_t n = fr_ws_close_payload(p, ws->close_code, ws->close_text);
        f = frame(FR_WS_OP_CLOSE, (const char *)p, n, &len);
    }
    fr_stream_send(s, f, len);
}

static void ws_heartbeat(fr_stream_t *s) {
    ws_state_t *ws = s->tp_state;
    if (ws->ping_pending) {
        /* No pong for a whole heartbeat interval: the peer is gone. */
        ws_close(s, FR_WS_CLOSE_GOING_AWAY, "no pong", "timeout");
        return;
    }
    ws->ping_pending = 1;
    fr_stream_send_static(s, ping_frame, sizeof ping_frame);
    FR_BUMP(s->env->metrics->heartbeats, 1);
}

/* ---- what clients send -------------------------------------------------------------------- */

static void send_error(fr_stream_t *s, const char *msg) {
    fr_buf_t b = {0};
    fr_buf_put(&b, "{\"v\":1,\"type\":\"error\",\"error\":", 30);
    fr_json_put_string(&b, msg, strlen(msg));
    fr_buf_put(&b, "}", 1);
    send_json(s, b.p, b.len);
    fr_buf_free(&b);
}

static void send_topics(fr_stream_t *s) {
    fr_buf_t b = {0};
    fr_buf_put(&b, "{\"v\":1,\"type\":\"subscribed\",\"topics\":[", 37);
    for (size_t i = 0; i < s->ntopics; i++) {
        if (i)
            fr_buf_put(&b, ",", 1);
        fr_json_put_string(&b, s->topics[i], strlen(s->topics[i]));
    }
    fr_buf_put(&b, "]}", 2);
    send_json(s, b.p, b.len);
    fr_buf_free(&b);
}

/* ---- hooks, which may wait ---------------------------------------------------------------- */

static void ws_input(fr_stream_t *s, const char *data, size_t len);

static void on_hook_done(void *ctx, int status) {
    fr_stream_t *s = ctx;
    ws_state_t *ws = s->tp_state;
    ws->task = NULL;
    if (status == FR_TASK_OK)
        ws->reader(s);
    else if (status == FR_TASK_TIMEOUT)
        send_error(s, "the hook did not answer in time");
    else
        send_error(s, "internal error");
    /* What came while the hook waited, in order; it may wait again and hold the rest. */
    size_t len;
    char *held = fr_buf_take(&ws->held, &len);
    if (held) {
        ws_input(s, held, len);
        free(held);
    }
}

/* Runs the hook below nargs arguments; its results are read now or when its wait ends. */
static void run_hook(fr_stream_t *s, const char *what, int nargs, int nresults,
                     void (*reader)(fr_stream_t *s)) {
    ws_state_t *ws = s->tp_state;
    int rc = fr_task_start(s->vm, s->route, what, nargs, nresults, on_hook_done, s, &ws->task);
    if (rc == FR_TASK_WAIT) {
        ws->reader = reader;
        ws->hook = what;
        return;
    }
    ws->task = NULL;
    if (rc == FR_TASK_OK)
        reader(s);
    else
        send_error(s, "internal error");
}

static void read_topics(fr_stream_t *s) {
    char **topics;
    size_t n;
    const char *err;
    if (fr_hook_read_topics(s->vm, s->route, &topics, &n, &err) != FR_TOPICS_OK) {
        send_error(s, err);
        return;
    }
    fr_stream_set_topics(s, topics, n);
    fr_topics_free(topics, n);
    send_topics(s);
}

/* Asks the route's topics hook for the new list: topics(req, who, {op=, topics=, current=}). */
static void change_topics(fr_stream_t *s, lua_State *L, const char *op, int msg) {
    ws_state_t *ws = s->tp_state;
    lua_getfield(L, msg, "topics");
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        send_error(s, "subscribe and unsubscribe take a list of topics");
        return;
    }
    int wanted = lua_gettop(L);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, op);
    lua_setfield(L, -2, "op");
    lua_pushvalue(L, wanted);
    lua_setfield(L, -2, "topics");
    lua_createtable(L, (int)s->ntopics, 0);
    for (size_t i = 0; i < s->ntopics; i++) {
        lua_pushstring(L, s->topics[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_setfield(L, -2, "current");
    int change_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);
    int nargs = fr_hook_push_topics(s->vm, s->route, ws->req_ref, s->who_ref, change_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, change_ref);
    run_hook(s, "topics", nargs, 1, read_topics);
}

/* What message returned: a table (sent as JSON), a string (sent as it is) or nil. */
static void read_reply(fr_stream_t *s) {
    fr_vm_t *vm = s->vm;
    lua_State *L = vm->L;
    int top = lua_gettop(L) - 1;
    if (lua_istable(L, -1)) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, vm->encode_ref);
        lua_insert(L, -2);
        if (lua_pcall(L, 1, 1, 0) != 0) {
            fr_error("route %s: message hook returned what JSON cannot hold: %s",
                     s->route->pattern.source, lua_tostring(L, -1));
            lua_settop(L, top);
            send_error(s, "internal error");
            return;
        }
    }
    if (lua_type(L, -1) == LUA_TSTRING) {
        size_t n;
        const char *reply = lua_tolstring(L, -1, &n);
        send_json(s, reply, n);
    }
    lua_settop(L, top);
}

/* Hands a message to the route's message(conn, msg, who) hook; what it returns is sent back. */
static void to_hook(fr_stream_t *s, lua_State *L, int msg) {
    fr_vm_t *vm = s->vm;
    if (!fr_vm_push_hook(vm, s->route, FR_HOOK_MESSAGE)) {
        send_error(s, "this route takes no messages");
        return;
    }
    lua_createtable(L, 0, 3);
    lua_pushnumber(L, (lua_Number)s->id);
    lua_setfield(L, -2, "id");
    lua_pushstring(L, s->remote);
    lua_setfield(L, -2, "remote");
    lua_createtable(L, (int)s->ntopics, 0);
    for (size_t i = 0; i < s->ntopics; i++) {
        lua_pushstring(L, s->topics[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_setfield(L, -2, "topics");
    lua_pushvalue(L, msg);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->who_ref);
    run_hook(s, "message", 3, 1, read_reply);
}

/* A tier's message bucket: 1 when the message may go on, else the client is told when. */
static int allow_message(fr_stream_t *s) {
    if (!s->budget->name)
        return 1; /* the default tier has no rate */
    fr_streams_t *env = s->env;
    char client[300];
    unsigned retry_after;
    fr_hook_client_id(s->vm, s->who_ref, s->remote, client, sizeof client);
    if (fr_ratelimit_take(env->limits, FR_RL_MESSAGE, s->budget, client, 1, fr_mono_ms(),
                          &retry_after) == 0)
        return 1;
    char msg[128];
    int n = snprintf(msg, sizeof msg,
                     "{\"v\":1,\"type\":\"error\",\"error\":\"too many messages\","
                     "\"retry_after\":%u}",
                     retry_after);
    FR_BUMP(env->tier_rejected[s->budget - env->config->tiers], 1);
    send_json(s, msg, (size_t)n);
    return 0;
}

static void on_text(fr_stream_t *s, const char *data, size_t len) {
    fr_vm_t *vm = s->vm;
    lua_State *L = vm->L;
    if (!allow_message(s))
        return;
    int base = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->decode_ref);
    lua_pushlstring(L, data, len);
    if (lua_pcall(L, 1, 1, 0) != 0 || !lua_istable(L, -1)) {
        lua_settop(L, base);
        send_error(s, "messages are JSON objects");
        return;
    }
    int msg = lua_gettop(L);
    lua_getfield(L, msg, "type");
    const char *type = lua_isstring(L, -1) ? lua_tostring(L, -1) : "";
    if (strcmp(type, "subscribe") == 0 || strcmp(type, "unsubscribe") == 0) {
        change_topics(s, L, type, msg);
    } else if (strcmp(type, "resume") == 0) {
        lua_getfield(L, msg, "id");
        const char *err = lua_isstring(L, -1) ? fr_stream_resume_from(s, lua_tostring(L, -1))
                                              : "resume takes the last id you saw";
        if (err)
            send_error(s, err);
    } else if (strcmp(type, "ping") == 0) {
        send_json(s, "{\"v\":1,\"type\":\"pong\"}", 21);
    } else {
        to_hook(s, L, msg);
    }
    lua_settop(L, base);
}

/* Input held behind a waiting hook is bounded like one message: a client that floods a
 * waiting hook is closed. */
static int hold_input(fr_stream_t *s, const char *data, size_t len) {
    ws_state_t *ws = s->tp_state;
    if (ws->held.len + len > ws->parser.max_size + 4096) {
        ws_close(s, FR_WS_CLOSE_TOO_BIG, "too much sent while a hook waits", "error");
        return -1;
    }
    fr_buf_put(&ws->held, data, len);
    return 0;
}

static void ws_input(fr_stream_t *s, const char *data, size_t len) {
    ws_state_t *ws = s->tp_state;
    while (len > 0 && !s->ending && !s->detached) {
        if (ws->task) {
            hold_input(s, data, len);
            return;
        }
        size_t used = 0;
        fr_ws_msg_t m;
        int rc = fr_ws_parse(&ws->parser, data, len, &used, &m);
        data += used;
        len -= used;
        if (rc == FR_WS_NEED_MORE)
            return;
        if (rc == FR_WS_ERROR) {
            ws_close(s, m.close_code, m.reason, "error");
            return;
        }
        switch (m.opcode) {
        case FR_WS_OP_PING: {
            size_t n;
            char *f = frame(FR_WS_OP_PONG, m.data, m.len, &n);
            fr_stream_send(s, f, n);
            break;
        }
        case FR_WS_OP_PONG:
            ws->ping_pending = 0;
            break;
        case FR_WS_OP_CLOSE:
            /* Answer with the same code (an empty close answers an empty one). */
            ws_close(s, m.close_code == FR_WS_CLOSE_NO_STATUS ? 0 : m.close_code, "", "client");
            return;
        case FR_WS_OP_BINARY:
            ws_close(s, FR_WS_CLOSE_UNSUPPORTED, "messages are JSON text", "error");
            return;
        default:
            on_text(s, m.data, m.len);
            break;
        }
    }
}

const fr_transport_t fr_transport_ws = {
    .name = "ws",
    .whole = 0,
    .reuse = 0,
    .begin = ws_begin,
    .frame = ws_frame,
    .dropped = ws_dropped,
    .reset = ws_reset,
    .heartbeat = ws_heartbeat,
    .finish = ws_finish,
    .input = ws_input,
    .free = ws_free,
};
