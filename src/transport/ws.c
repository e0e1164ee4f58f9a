#include "transport/ws.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app/dispatch.h"
#include "base/buf.h"
#include "base/json.h"
#include "base/log.h"
#include "base/util.h"
#include "codec/ws.h"
#include "http/conn.h"
#include "server/worker.h"
#include "stream/stream.h"

const char fr_ws_ping_frame[2] = {(char)0x89, 0x00};

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

int fr_ws_wants_upgrade(fr_conn_t *c) {
    const char *up = fr_request_header(&c->req, "upgrade");
    return up && header_has_token(up, "websocket");
}

int fr_ws_check_handshake(fr_conn_t *c, char accept[29], int *proto) {
    const fr_request_t *req = &c->req;
    const char *conn = fr_request_header(req, "connection");
    const char *version = fr_request_header(req, "sec-websocket-version");
    const char *key = fr_request_header(req, "sec-websocket-key");
    if (strcmp(req->method, "GET") != 0 || req->http_major != 1 || req->http_minor < 1 || !conn ||
        !header_has_token(conn, "upgrade")) {
        fr_conn_respond_error(c, 400, "a WebSocket upgrade is an HTTP/1.1 GET with "
                                      "Connection: Upgrade and Upgrade: websocket");
        return -1;
    }
    if (!version || strcmp(version, "13") != 0) {
        c->req.keep_alive = 0;
        fr_conn_respond(c, 426, "application/json", "Sec-WebSocket-Version: 13\r\n",
                        "{\"error\":\"this server speaks WebSocket version 13\"}", 51);
        return -1;
    }
    if (!key || fr_ws_accept_key(key, strlen(key), accept) < 0) {
        fr_conn_respond_error(c, 400, "Sec-WebSocket-Key must be 16 bytes in base64");
        return -1;
    }
    /* Browsers send Origin; when the app lists allowed origins, a page from elsewhere cannot
     * open a socket with the user's cookies (cross-site WebSocket hijacking). */
    const char *origin = fr_request_header(req, "origin");
    if (origin && c->worker->config->ncors > 0 && !fr_config_cors_allows(c->worker->config, origin)) {
        fr_conn_respond_error(c, 403, "this origin may not open a WebSocket here");
        return -1;
    }
    const char *protos = fr_request_header(req, "sec-websocket-protocol");
    *proto = protos && header_has_token(protos, "freshet.v1");
    return 0;
}

void fr_ws_send_handshake(fr_conn_t *c, const char *accept, int proto) {
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n"
                     "%s\r\n",
                     accept, proto ? "Sec-WebSocket-Protocol: freshet.v1\r\n" : "");
    fr_conn_write(c, fr_strndup(head, (size_t)n), (size_t)n);
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

char *fr_ws_text_frame(const char *payload, size_t len, size_t *out_len) {
    return frame(FR_WS_OP_TEXT, payload, len, out_len);
}

char *fr_ws_close_frame(uint16_t code, const char *reason, size_t *out_len) {
    uint8_t p[125];
    size_t n = fr_ws_close_payload(p, code, reason);
    return frame(FR_WS_OP_CLOSE, (const char *)p, n, out_len);
}

uint16_t fr_ws_close_code(const char *reason, const char **text) {
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
    char *f = fr_ws_text_frame(b.p, b.len, len);
    fr_buf_free(&b);
    return f;
}

const char *fr_ws_event_frame(fr_event_t *ev, size_t *len) {
    fr_ws_blob_t *f = __atomic_load_n(&ev->ws, __ATOMIC_ACQUIRE);
    if (!f) {
        char id[FR_ID_MAX_LEN];
        fr_id_format(ev->id, id);
        size_t n;
        char *frame = envelope(ev, id, &n);
        fr_ws_blob_t *made = fr_malloc(sizeof *made + n);
        made->len = n;
        memcpy(made->bytes, frame, n);
        free(frame);
        fr_ws_blob_t *expected = NULL;
        /* Another worker may have built it first: keep theirs. */
        if (__atomic_compare_exchange_n(&ev->ws, &expected, made, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
            f = made;
        } else {
            free(made);
            f = expected;
        }
    }
    *len = f->len;
    return f->bytes;
}

char *fr_ws_event_frame_with_id(const fr_event_t *ev, const char *id, size_t *len) {
    return envelope(ev, id, len);
}

/* ---- what clients send -------------------------------------------------------------------- */

static void send_json(fr_stream_t *s, const char *json, size_t n) {
    size_t len;
    char *f = fr_ws_text_frame(json, n, &len);
    fr_stream_send(s, f, len);
}

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

/* Asks the route's topics hook for the new list: topics(req, who, {op=, topics=}). */
static void change_topics(fr_stream_t *s, lua_State *L, const char *op, int msg) {
    fr_vm_t *vm = s->vm;
    lua_getfield(L, msg, "topics");
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        send_error(s, "subscribe and unsubscribe take a list of topics");
        return;
    }
    int wanted = lua_gettop(L);
    fr_vm_push_hook(vm, s->route, FR_HOOK_TOPICS);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->req_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->who_ref);
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
    if (fr_vm_call(vm, s->route, "topics", 3, 1) != 0) {
        lua_settop(L, wanted - 1);
        send_error(s, "internal error");
        return;
    }
    const char *err = fr_stream_set_topics(s, L);
    lua_settop(L, wanted - 1);
    if (err)
        send_error(s, err);
    else
        send_topics(s);
}

/* Hands a message to the route's message(conn, msg, who) hook; what it returns is sent back. */
static void to_hook(fr_stream_t *s, lua_State *L, int msg) {
    fr_vm_t *vm = s->vm;
    if (!fr_vm_push_hook(vm, s->route, FR_HOOK_MESSAGE)) {
        send_error(s, "this route takes no messages");
        return;
    }
    lua_createtable(L, 0, 3);
    lua_pushnumber(L, (lua_Number)s->conn->id);
    lua_setfield(L, -2, "id");
    lua_pushstring(L, s->conn->remote);
    lua_setfield(L, -2, "remote");
    lua_createtable(L, (int)s->ntopics, 0);
    for (size_t i = 0; i < s->ntopics; i++) {
        lua_pushstring(L, s->topics[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_setfield(L, -2, "topics");
    lua_pushvalue(L, msg);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->who_ref);
    int top = lua_gettop(L) - 4;
    if (fr_vm_call(vm, s->route, "message", 3, 1) != 0) {
        send_error(s, "internal error");
        return;
    }
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

static void on_text(fr_stream_t *s, const char *data, size_t len) {
    fr_vm_t *vm = s->vm;
    lua_State *L = vm->L;
    fr_worker_t *w = s->worker;
    if (s->tier) {
        const fr_tier_t *tier = s->budget;
        char client[300];
        unsigned retry_after;
        fr_dispatch_client_id(s->conn, vm, s->who_ref, client, sizeof client);
        if (fr_ratelimit_take(w->limits, FR_RL_MESSAGE, tier, client, 1, fr_mono_ms(),
                              &retry_after) < 0) {
            char msg[128];
            int n = snprintf(msg, sizeof msg,
                             "{\"v\":1,\"type\":\"error\",\"error\":\"too many messages\","
                             "\"retry_after\":%u}",
                             retry_after);
            FR_BUMP(w->tier_rejected[tier - w->config->tiers], 1);
            send_json(s, msg, (size_t)n);
            return;
        }
    }
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

void fr_ws_on_read(fr_stream_t *s, const char *data, size_t len) {
    while (len > 0 && !s->ending && !s->detached) {
        size_t used = 0;
        fr_ws_msg_t m;
        int rc = fr_ws_parse(s->wsp, data, len, &used, &m);
        data += used;
        len -= used;
        if (rc == FR_WS_NEED_MORE)
            return;
        if (rc == FR_WS_ERROR) {
            fr_stream_close_ws(s, m.close_code, m.reason, "error");
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
            s->ws_ping_pending = 0;
            break;
        case FR_WS_OP_CLOSE:
            /* Answer with the same code (an empty close answers an empty one). */
            fr_stream_close_ws(s, m.close_code == FR_WS_CLOSE_NO_STATUS ? 0 : m.close_code, "",
                               "client");
            return;
        case FR_WS_OP_BINARY:
            fr_stream_close_ws(s, FR_WS_CLOSE_UNSUPPORTED, "messages are JSON text", "error");
            return;
        default:
            on_text(s, m.data, m.len);
            break;
        }
    }
}
