/* WebSocket codec: handshake key, client frame parser, server frame builders. The parser
 * tests follow the sections of the Autobahn testsuite (1 framing, 2 ping/pong, 3 reserved bits,
 * 4 opcodes, 5 fragmentation, 6 UTF-8, 7 close, 9 limits). Every input is parsed whole and
 * again in chunks of 1, 2, 3, 7 and 64 bytes, and all ways must give the same results. */
#include <stdlib.h>
#include <string.h>

#include "fr_test.h"
#include "base/utf8.h"
#include "codec/ws.h"

/* ---- A client: builds masked frames ------------------------------------------------------ */

typedef struct {
    char *b;
    size_t len, cap;
} wire_t;

static void wire_put(wire_t *w, const void *p, size_t n) {
    if (w->len + n > w->cap) {
        w->cap = (w->len + n) * 2 + 64;
        w->b = realloc(w->b, w->cap);
        if (!w->b)
            abort();
    }
    if (n)
        memcpy(w->b + w->len, p, n);
    w->len += n;
}

static void wire_free(wire_t *w) {
    free(w->b);
    memset(w, 0, sizeof *w);
}

static uint32_t rng_state = 0x2545F491u;

/* A fixed-seed generator, so a failure repeats on every run. */
static uint32_t rng(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

/* Appends one frame with b0 as its first byte (FIN, RSV bits, opcode), the given payload and a
 * fresh mask key when masked. lenbits forces a length encoding (7, 16 or 64); 0 picks the
 * shortest, as a conforming client would. */
static void frame_ex(wire_t *w, uint8_t b0, int masked, int lenbits, const void *payload,
                     size_t n) {
    uint8_t h[14];
    size_t hl = 2;
    if (!lenbits)
        lenbits = n <= 125 ? 7 : n <= 0xFFFF ? 16 : 64;
    h[0] = b0;
    if (lenbits == 7) {
        h[1] = (uint8_t)n;
    } else if (lenbits == 16) {
        h[1] = 126;
        h[2] = (uint8_t)(n >> 8);
        h[3] = (uint8_t)n;
        hl = 4;
    } else {
        h[1] = 127;
        for (int k = 0; k < 8; k++)
            h[2 + k] = (uint8_t)((uint64_t)n >> (56 - 8 * k));
        hl = 10;
    }
    uint8_t key[4] = {0, 0, 0, 0};
    if (masked) {
        h[1] |= 0x80;
        uint32_t r = rng();
        /* Never the all-zero key: it would hide a parser that forgets to unmask. */
        key[0] = (uint8_t)(r | 1);
        key[1] = (uint8_t)(r >> 8);
        key[2] = (uint8_t)(r >> 16);
        key[3] = 0xA5;
        memcpy(h + hl, key, 4);
        hl += 4;
    }
    wire_put(w, h, hl);
    const uint8_t *src = payload;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)(src[i] ^ key[i & 3]);
        wire_put(w, &c, 1);
    }
}

static void frame(wire_t *w, int fin, int op, const void *payload, size_t n) {
    frame_ex(w, (uint8_t)((fin ? 0x80 : 0) | op), 1, 0, payload, n);
}

#define FRAME(w, fin, op, lit) frame((w), (fin), (op), (lit), sizeof(lit) - 1)

/* A close frame with a code and a reason of reason_len bytes. */
static void close_frame(wire_t *w, unsigned code, const char *reason, size_t reason_len) {
    uint8_t p[256];
    p[0] = (uint8_t)(code >> 8);
    p[1] = (uint8_t)code;
    memcpy(p + 2, reason, reason_len);
    frame(w, 1, FR_WS_OP_CLOSE, p, 2 + reason_len);
}

/* ---- Running the parser and recording what it returns ------------------------------------ */

typedef struct {
    int rc; /* FR_WS_MESSAGE or FR_WS_ERROR */
    int opcode;
    char *data; /* copies: the parser's bytes are only borrowed */
    size_t len;
    unsigned close_code;
    char *reason;
    size_t reason_len;
} rec_t;

#define MAX_RECS 40

typedef struct {
    rec_t r[MAX_RECS];
    size_t n;
} recs_t;

static void recs_free(recs_t *rs) {
    for (size_t i = 0; i < rs->n && i < MAX_RECS; i++) {
        free(rs->r[i].data);
        free(rs->r[i].reason);
    }
    rs->n = 0;
}

static char *dup_bytes(const char *p, size_t n) {
    char *d = malloc(n + 1);
    if (!d)
        abort();
    if (n)
        memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

static void record(recs_t *rs, int rc, const fr_ws_msg_t *m, const char *file, int line) {
    fr_t_check(m->data != NULL, "msg.data is never NULL", file, line);
    if (rc == FR_WS_MESSAGE && m->data)
        fr_t_check(m->data[m->len] == '\0', "payload is NUL-terminated", file, line);
    if (rc == FR_WS_ERROR) {
        /* The reason goes into the close frame the server sends, which holds 123 bytes. */
        fr_t_check(m->reason && strlen(m->reason) == m->reason_len && m->reason_len <= 123,
                   "error reason is a short string", file, line);
    }
    if (rs->n >= MAX_RECS) {
        rs->n++;
        return;
    }
    rec_t *r = &rs->r[rs->n++];
    r->rc = rc;
    r->opcode = m->opcode;
    r->data = dup_bytes(m->data ? m->data : "", m->data ? m->len : 0);
    r->len = m->len;
    r->close_code = m->close_code;
    r->reason = dup_bytes(m->reason ? m->reason : "", m->reason ? m->reason_len : 0);
    r->reason_len = m->reason_len;
}

/* Feeds w to a fresh parser in pieces of `chunk` bytes (0: all at once), calling again after
 * each message with what is left, and checks the consumed contract on every call. */
static void run(const wire_t *w, size_t max, size_t chunk, recs_t *rs, const char *file, int line) {
    fr_ws_parser_t p;
    fr_ws_parser_init(&p, max);
    int failed = 0;
    unsigned code = 0;
    for (size_t off = 0; off < w->len && !failed;) {
        size_t clen = w->len - off;
        if (chunk && clen > chunk)
            clen = chunk;
        const char *c = w->b + off;
        size_t rest = clen;
        for (;;) {
            size_t used = (size_t)-1;
            fr_ws_msg_t m;
            int rc = fr_ws_parse(&p, c, rest, &used, &m);
            fr_t_check(used <= rest, "consumed <= len", file, line);
            if (rc == FR_WS_NEED_MORE) {
                fr_t_check(used == rest, "NEED_MORE consumes everything", file, line);
                break;
            }
            record(rs, rc, &m, file, line);
            if (rc == FR_WS_ERROR) {
                failed = 1;
                code = m.close_code;
                break;
            }
            c += used;
            rest -= used;
        }
        off += clen;
    }
    if (failed) {
        /* An error is final: the bytes after a bad frame cannot be trusted. */
        size_t used = 1;
        fr_ws_msg_t m;
        fr_t_check(fr_ws_parse(&p, "\x81\x80", 2, &used, &m) == FR_WS_ERROR,
                   "a call after an error fails again", file, line);
        fr_t_eq_uint(m.close_code, code, "repeated close_code", "first close_code", file, line);
        fr_t_eq_uint(used, 0, "consumed after an error", "0", file, line);
    }
    fr_ws_parser_close(&p);
}

static void same_recs(const recs_t *a, const recs_t *b, size_t chunk, const char *file, int line) {
    char what[64];
    snprintf(what, sizeof what, "results fed in %zu-byte chunks", chunk);
    if (!fr_t_eq_uint(b->n, a->n, what, "results fed whole", file, line))
        return;
    for (size_t i = 0; i < a->n && i < MAX_RECS; i++) {
        const rec_t *x = &a->r[i], *y = &b->r[i];
        int same = x->rc == y->rc && x->opcode == y->opcode && x->len == y->len &&
                   memcmp(x->data, y->data, x->len) == 0 && x->close_code == y->close_code &&
                   x->reason_len == y->reason_len &&
                   memcmp(x->reason, y->reason, x->reason_len) == 0;
        if (!fr_t_check(same, what, file, line))
            printf("    differs at result %zu\n", i);
    }
}

/* Parses w whole into rs, and in small chunks to check that the split makes no difference.
 * Frees w, which can then be filled again. */
static void parse_all(wire_t *w, size_t max, recs_t *rs, const char *file, int line) {
    static const size_t chunks[] = {1, 2, 3, 7, 64};
    rs->n = 0;
    run(w, max, 0, rs, file, line);
    for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
        recs_t other = {.n = 0};
        run(w, max, chunks[k], &other, file, line);
        same_recs(rs, &other, chunks[k], file, line);
        recs_free(&other);
    }
    wire_free(w);
}

#define MAX_DEFAULT (1u << 20)
#define PARSE(w, rs) parse_all((w), MAX_DEFAULT, (rs), __FILE__, __LINE__)
#define PARSE_MAX(w, max, rs) parse_all((w), (max), (rs), __FILE__, __LINE__)

static void expect_msg(const recs_t *rs, size_t i, int opcode, const void *data, size_t len,
                       const char *file, int line) {
    if (!fr_t_check(i < rs->n && i < MAX_RECS, "result exists", file, line))
        return;
    const rec_t *r = &rs->r[i];
    if (!fr_t_eq_int(r->rc, FR_WS_MESSAGE, "rc", "FR_WS_MESSAGE", file, line))
        printf("    error %u: %s\n", r->close_code, r->reason);
    fr_t_eq_int(r->opcode, opcode, "opcode", "expected opcode", file, line);
    fr_t_mem(r->data, r->len, data, len, "payload", "expected", file, line);
}

static void expect_error(const recs_t *rs, size_t i, unsigned code, const char *file, int line) {
    fr_t_eq_uint(rs->n, i + 1, "results", "messages before the error + 1", file, line);
    if (i >= rs->n || i >= MAX_RECS)
        return;
    const rec_t *r = &rs->r[i];
    fr_t_eq_int(r->rc, FR_WS_ERROR, "rc", "FR_WS_ERROR", file, line);
    fr_t_eq_uint(r->close_code, code, "close_code", "expected code", file, line);
}

#define MSG(rs, i, op, lit) expect_msg((rs), (i), (op), (lit), sizeof(lit) - 1, __FILE__, __LINE__)
#define MSG_N(rs, i, op, p, n) expect_msg((rs), (i), (op), (p), (n), __FILE__, __LINE__)
#define ERR(rs, i, code) expect_error((rs), (i), (code), __FILE__, __LINE__)
#define COUNT(rs, k) CHECK_EQ_UINT((rs)->n, (k))

/* Parses a wire that should end in an error after `before` messages. */
static void check_fails(wire_t *w, size_t before, unsigned code, const char *file, int line) {
    recs_t rs = {.n = 0};
    parse_all(w, MAX_DEFAULT, &rs, file, line);
    expect_error(&rs, before, code, file, line);
    recs_free(&rs);
}

#define FAILS(w, before, code) check_fails((w), (before), (code), __FILE__, __LINE__)

/* ---- 1 Framing --------------------------------------------------------------------------- */

static const size_t lengths[] = {0, 125, 126, 127, 65535, 65536};

static void check_lengths(int op) {
    for (size_t k = 0; k < sizeof lengths / sizeof lengths[0]; k++) {
        size_t n = lengths[k];
        char *payload = malloc(n + 1);
        REQUIRE(payload != NULL);
        for (size_t i = 0; i < n; i++)
            payload[i] = op == FR_WS_OP_TEXT ? (char)('a' + i % 26) : (char)(i * 7 + 3);
        wire_t w = {0};
        frame(&w, 1, op, payload, n);
        /* 7-bit lengths up to 125, 16-bit up to 65535, 64-bit beyond; 4 mask bytes each. */
        size_t hl = n <= 125 ? 2 : n <= 0xFFFF ? 4 : 10;
        CHECK_EQ_UINT(w.len, hl + 4 + n);
        recs_t rs = {.n = 0};
        PARSE(&w, &rs);
        COUNT(&rs, 1);
        MSG_N(&rs, 0, op, payload, n);
        recs_free(&rs);
        free(payload);
    }
}

static void test_1_1_text_lengths(void) {
    check_lengths(FR_WS_OP_TEXT);
}

static void test_1_2_binary_lengths(void) {
    check_lengths(FR_WS_OP_BINARY);
}

static void test_1_non_minimal_lengths_allowed(void) {
    wire_t w = {0};
    frame_ex(&w, 0x81, 1, 16, "hello", 5);
    frame_ex(&w, 0x82, 1, 64, "hi", 2);
    frame_ex(&w, 0x81, 1, 64, "", 0);
    recs_t rs = {.n = 0};
    PARSE(&w, &rs);
    COUNT(&rs, 3);
    MSG(&rs, 0, FR_WS_OP_TEXT, "hello");
    MSG(&rs, 1, FR_WS_OP_BINARY, "hi");
    MSG(&rs, 2, FR_WS_OP_TEXT, "");
    recs_free(&rs);
}

static void test_1_64bit_length_top_bit(void) {
    wire_t w = {0};
    const uint8_t h[] = {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4};
    wire_put(&w, h, sizeof h);
    FAILS(&w, 0, 1002);
}

static void test_1_unmasked_frame(void) {
    wire_t w = {0};
    frame_ex(&w, 0x81, 0, 0, "hi", 2);
    FAILS(&w, 0, 1002);
    /* Control frames must be masked too. */
    frame_ex(&w, 0x89, 0, 0, "", 0);
    FAILS(&w, 0, 1002);
    /* A good frame first is still returned. */
    FRAME(&w, 1, FR_WS_OP_TEXT, "ok");
    frame_ex(&w, 0x82, 0, 0, "x", 1);
    FAILS(&w, 1, 1002);
}

static void test_1_several_frames_in_one_buffer(void) {
    wire_t w = {0};
    FRAME(&w, 1, FR_WS_OP_TEXT, "one");
    size_t first = w.len;
    FRAME(&w, 1, FR_WS_OP_BINARY, "two!");
    size_t second = w.len - first;
    FRAME(&w, 1, FR_WS_OP_PING, "");
    /* consumed stops at the end of each message, so the caller knows where the next starts. */
    fr_ws_parser_t p;
    fr_ws_parser_init(&p, 100);
    fr_ws_msg_t m;
    size_t used = 0;
    CHECK_EQ_INT(fr_ws_parse(&p, w.b, w.len, &used, &m), FR_WS_MESSAGE);
    CHECK_EQ_UINT(used, first);
    CHECK_MEM_LIT(m.data, m.len, "one");
    size_t off = used;
    CHECK_EQ_INT(fr_ws_parse(&p, w.b + off, w.len - off, &used, &m), FR_WS_MESSAGE);
    CHECK_EQ_UINT(used, second);
    CHECK_EQ_INT(m.opcode, FR_WS_OP_BINARY);
    CHECK_MEM_LIT(m.data, m.len, "two!");
    off += used;
    CHECK_EQ_INT(fr_ws_parse(&p, w.b + off, w.len - off, &used, &m), FR_WS_MESSAGE);
    CHECK_EQ_INT(m.opcode, FR_WS_OP_PING);
    CHECK_EQ_UINT(m.len, 0);
    off += used;
    CHECK_EQ_UINT(off, w.len);
    CHECK_EQ_INT(fr_ws_parse(&p, w.b + off, 0, &used, &m), FR_WS_NEED_MORE);
    CHECK_EQ_UINT(used, 0);
    fr_ws_parser_close(&p);
    wire_free(&w);
}

static void test_1_byte_at_a_time_mixed_input(void) {
    /* Every frame kind in one stream; parse_all compares whole against byte-at-a-time. */
    wire_t w = {0};
    char big[300];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('A' + i % 23);
    FRAME(&w, 1, FR_WS_OP_TEXT, "Hello, \xe2\x82\xac!");
    FRAME(&w, 0, FR_WS_OP_BINARY, "\x00\xff\x80");
    FRAME(&w, 1, FR_WS_OP_PING, "p1");
    frame(&w, 0, FR_WS_OP_CONT, big, sizeof big);
    FRAME(&w, 1, FR_WS_OP_PONG, "p2");
    FRAME(&w, 1, FR_WS_OP_CONT, "end");
    frame(&w, 1, FR_WS_OP_TEXT, big, sizeof big);
    close_frame(&w, 1000, "bye", 3);
    recs_t rs = {.n = 0};
    PARSE(&w, &rs);
    COUNT(&rs, 6);
    MSG(&rs, 0, FR_WS_OP_TEXT, "Hello, \xe2\x82\xac!");
    MSG(&rs, 1, FR_WS_OP_PING, "p1");
    MSG(&rs, 2, FR_WS_OP_PONG, "p2");
    char expect[3 + sizeof big + 3];
    memcpy(expect, "\x00\xff\x80", 3);
    memcpy(expect + 3, big, sizeof big);
    memcpy(expect + 3 + sizeof big, "end", 3);
    MSG_N(&rs, 3, FR_WS_OP_BINARY, expect, sizeof expect);
    MSG_N(&rs, 4, FR_WS_OP_TEXT, big, sizeof big);
    MSG(&rs, 5, FR_WS_OP_CLOSE,
        "\x03\xe8"
        "bye");
    recs_free(&rs);
}

static void test_1_large_then_small_messages(void) {
    /* A large message's buffer is given back afterwards; the next message must not notice. */
    size_t n = 200000;
    char *big = malloc(n);
    REQUIRE(big != NULL);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)(i % 251);
    wire_t w = {0};
    frame(&w, 1, FR_WS_OP_BINARY, big, n);
    FRAME(&w, 1, FR_WS_OP_TEXT, "x");
    frame(&w, 0, FR_WS_OP_BINARY, big, 1000);
    frame(&w, 1, FR_WS_OP_CONT, big + 1000, n - 1000);
    FRAME(&w, 1, FR_WS_OP_BINARY, "");
    recs_t rs = {.n = 0};
    PARSE(&w, &rs);
    COUNT(&rs, 4);
    MSG_N(&rs, 0, FR_WS_OP_BINARY, big, n);
    MSG(&rs, 1, FR_WS_OP_TEXT, "x");
    MSG_N(&rs, 2, FR_WS_OP_BINARY, big, n);
    MSG(&rs, 3, FR_WS_OP_BINARY, "");
    recs_free(&rs);
    free(big);
}

/* ---- 2 Ping and pong --------------------------------------------------------------------- */

static void test_2_ping_pong_payloads(void) {
    char p125[125];
    for (size_t i = 0; i < sizeof p125; i++)
        p125[i] = (char)(0xFE - i); /* binary: a ping's payload is not text */
    wire_t w = {0};
    FRAME(&w, 1, FR_WS_OP_PING, "");
    frame(&w, 1, FR_WS_OP_PING, p125, sizeof p125);
    FRAME(&w, 1, FR_WS_OP_PONG, "");
    frame(&w, 1, FR_WS_OP_PONG, p125, sizeof p125);
    /* 125 bytes in a 16-bit length field is still a 125-byte control frame. */
    frame_ex(&w, 0x89, 1, 16, p125, sizeof p125);
    recs_t rs = {.n = 0};
    PARSE(&w, &rs);
    COUNT(&rs, 5);
    MSG(&rs, 0, FR_WS_OP_PING, "");
    MSG_N(&rs, 1, FR_WS_OP_PING, p125, sizeof p125);
    MSG(&rs, 2, FR_WS_OP_PONG, "");
    MSG_N(&rs, 3, FR_WS_OP_PONG, p125, sizeof p125);
    MSG_N(&rs, 4, FR_WS_OP_PING, p125, sizeof p125);
    recs_free(&rs);
}

static void test_2_ping_over_125(void) {
    char p[126] = {0};
    wire_t w = {0};
    frame(&w, 1, FR_WS_OP_PING, p, 126);
    FAILS(&w, 0, 1002);
    frame(&w, 1, FR_WS_OP_PONG, p, 126);
    FAILS(&w, 0, 1002);
    /* Refused from the header, before the payload arrives. */
    fr_ws_parser_t ps;
    fr_ws_parser_init(&ps, 1000);
    fr_ws_msg_t m;
    size_t used;
    CHECK_EQ_INT(fr_ws_parse(&ps, "\x89\xfe\x00\x7e\x01\x02\x03\x04", 8, &used, &m), FR_WS_ERROR);
    CHECK_EQ_UINT(m.close_code, 1002);
    fr_ws_parser_close(&ps);
}

static void test_2_fragmented_ping(void) {
    wire_t w = {0};
    FRAME(&w, 0, FR_WS_OP_PING, "frag");
    FRAME(&w, 1, FR_WS_OP_CONT, "ment");
    FAILS(&w, 0, 1002);
}

static void test_2_many_pings(void) {
    wire_t w = {0};
    for (int i = 0; i < 10; i++)
        FRAME(&w, 1, FR_WS_OP_PING, "ping!");
    recs_t rs = {.n = 0};
    PARSE(&w, &rs);
    COUNT(&rs, 10);
    for (size_t i = 0; i < 10; i++)
        MSG(&rs, i, FR_WS_OP_PING, "ping!");
    recs_free(&rs);
}

/* ---- 3 Reserved bits --------------------------------------------------------------------- */

static void test_3_reserved_bits(void) {
    for (int bit = 0x10; bit <= 0x40; bit <<= 1) {
        wire_t w = {0};
        frame_ex(&w, (uint8_t)(0x81 | bit), 1, 0, "hi", 2);
        FAILS(&w, 0, 1002);
        /* A good message first is returned; the bad frame stops everything after it. */
        FRAME(&w, 1, FR_WS_OP_TEXT, "small");
        frame_ex(&w, (uint8_t)(0x82 | bit), 1, 0, "", 0);
        FRAME(&w, 1, FR_WS_OP_PING, "");
        FAILS(&w, 1, 1002);
        frame_ex(&w, (uint8_t)(0x89 | bit), 1, 0, "", 0);
        FAILS(&w, 0, 1002);
        FRAME(&w, 0, FR_WS_OP_TEXT, "a");
        frame_ex(&w, (uint8_t)(0x80 | bit), 1, 0, "b", 1);
        FAILS(&w, 0, 1002);
    }
    wire_t w = {0};
    frame_ex(&w, 0xF1, 1, 0, "hi", 2);
    FAILS(&w, 0, 1002);
}

/* ---- 4 Opcodes --------------------------------------------------------------------------- */

static void test_4_reserved_opcodes(void) {
    static const int ops[] = {3, 4, 5, 6, 7, 11, 12, 13, 14, 15};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        wire_t w = {0};
        frame(&w, 1, ops[k], "", 0);
        FAILS(&w, 0, 1002);
        FRAME(&w, 1, FR_WS_OP_TEXT, "ok");
        frame(&w, 1, ops[k], "reserved", 8);
        FRAME(&w, 1, FR_WS_OP_PING, "");
        FAILS(&w, 1, 1002);
    }
}

/* ---- 5 Fragmentation --------------------------------------------------------------------- */

static void test_5_text_in_fragments(void) {
    wire_t w = {0};
    FRAME(&w, 0, FR_WS_OP_TEXT, "frag");
    FRAME(&w, 0, FR_WS_OP_CONT, "men");
    FRAME(&w, 0, FR_WS_OP_CONT, "");
    FRAME(&w, 1, FR_WS_OP_CONT, "ted");
    FRAME(&w, 0, FR_WS_OP_BINARY, "\x01");
    FRAME(&w, 1, FR_WS_OP_CONT, "\x02");
    FRAME(&w, 0, FR_WS_OP_TEXT, "");
    FRAME(&w, 1, FR_WS_OP_CONT, "");
    recs_t rs = {.n = 0};
    PARSE(&w, &rs);
    COUNT(&rs, 3);
    MSG(&rs, 0, FR_WS_OP_TEXT, "fragmented");
    MSG(&rs, 1, FR_WS_OP_BINARY, "\x01\x02");
    MSG(&rs, 2, FR_WS_OP_TEXT, "");
    recs_free(&rs);
}

static void test_5_continuation_without_start(void) {
    wire_t w = {0};
    FRAME(&w, 1, FR_WS_OP_CONT, "x");
    FAILS(&w, 0, 1002);
    FRAME(&w, 0, FR_WS_OP_CONT, "x");
    FAILS(&w, 0, 1002);
    /* After a fragmented message completes, nothing is open any more. */
    FRAME(&w, 0, FR_WS_OP_TEXT, "a");
    FRAME(&w, 1, FR_WS_OP_CONT, "b");
    FRAME(&w, 1, FR_WS_OP_CONT, "c");
    FAILS(&w, 1, 1002);
}

static void test_5_new_message_while_fragmented(void) {
    wire_t w = {0};
    FRAME(&w, 0, FR_WS_OP_TEXT, "a");
    FRAME(&w, 1, FR_WS_OP_TEXT, "b");
    FAILS(&w, 0, 1002);
    FRAME(&w, 0, FR_WS_OP_TEXT, "a");
    FRAME(&w, 0, FR_WS_OP_BINARY, "b");
    FAILS(&w, 0, 1002);
    FRAME(&w, 0, FR_WS_OP_BINARY, "a");
    FRAME(&w, 1, FR_WS_OP_TEXT, "b");
    FAILS(&w, 0, 1002);
}

static void test_5_control_between_fragments(void) {
    wire_t w = {0};
    FRAME(&w, 0, FR_WS_OP_TEXT, "fra");
    FRAME(&w, 1, FR_WS_OP_PING, "ping 1");
    FRAME(&w, 0, FR_WS_OP_CONT, "gm");
    FRAME(&w, 1, FR_WS_OP_PONG, "pong");
    FRAME(&w, 1, FR_WS_OP_PING, "ping 2");
    FRAME(&w, 1, FR_WS_OP_CONT, "ent");
    FRAME(&w, 0, FR_WS_OP_BINARY, "b");
    close_frame(&w, 1001, "", 0);
    recs_t rs = {.n = 0};
    PARSE(&w, &rs);
    COUNT(&rs, 5);
    MSG(&rs, 0, FR_WS_OP_PING, "ping 1");
    MSG(&rs, 1, FR_WS_OP_PONG, "pong");
    MSG(&rs, 2, FR_WS_OP_PING, "ping 2");
    MSG(&rs, 3, FR_WS_OP_TEXT, "fragment");
    MSG(&rs, 4, FR_WS_OP_CLOSE, "\x03\xe9");
    if (rs.n == 5)
        CHECK_EQ_UINT(rs.r[4].close_code, 1001);
    recs_free(&rs);
}

/* ---- 6 UTF-8 ----------------------------------------------------------------------------- */

static void test_6_valid_split_across_fragments(void) {
    /* Greek "kosme", 2- and 3-byte characters, and a 4-byte emoji, split at every byte. */
    static const char text[] = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 \xf0\x9f\x98\x80";
    size_t n = sizeof text - 1;
    for (size_t cut = 0; cut <= n; cut++) {
        wire_t w = {0};
        frame(&w, 0, FR_WS_OP_TEXT, text, cut);
        frame(&w, 1, FR_WS_OP_CONT, text + cut, n - cut);
        recs_t rs = {.n = 0};
        PARSE(&w, &rs);
        COUNT(&rs, 1);
        MSG_N(&rs, 0, FR_WS_OP_TEXT, text, n);
        recs_free(&rs);
    }
    /* One byte per fragment. */
    wire_t w = {0};
    for (size_t i = 0; i < n; i++)
        frame(&w, i + 1 == n, i ? FR_WS_OP_CONT : FR_WS_OP_TEXT, text + i, 1);
    recs_t rs = {.n = 0};
    PARSE(&w, &rs);
    MSG_N(&rs, 0, FR_WS_OP_TEXT, text, n);
    recs_free(&rs);
}

#define TEXT_FAILS(lit)                                                                            \
    do {                                                                                           \
        wire_t w_ = {0};                                                                           \
        frame(&w_, 1, FR_WS_OP_TEXT, (lit), sizeof(lit) - 1);                                      \
        FAILS(&w_, 0, 1007);                                                                       \
    } while (0)

static void test_6_invalid_text(void) {
    TEXT_FAILS("\xc0\x80");         /* overlong NUL */
    TEXT_FAILS("\xc1\xbf");         /* overlong 2-byte */
    TEXT_FAILS("\xe0\x80\xaf");     /* overlong 3-byte */
    TEXT_FAILS("\xf0\x80\x80\xaf"); /* overlong 4-byte */
    TEXT_FAILS("\xed\xa0\x80");     /* U+D800 */
    TEXT_FAILS("\xed\xbf\xbf");     /* U+DFFF */
    TEXT_FAILS("\xf4\x90\x80\x80"); /* U+110000 */
    TEXT_FAILS("\xf5\x80\x80\x80");
    TEXT_FAILS("\xff");
    TEXT_FAILS("\x80");       /* continuation without a lead */
    TEXT_FAILS("ok\xe2\x82"); /* truncated at the end */
    TEXT_FAILS("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"
               "edited");
    /* Truncated at the end of a fragmented message. */
    wire_t w = {0};
    FRAME(&w, 0, FR_WS_OP_TEXT, "abc");
    FRAME(&w, 1, FR_WS_OP_CONT, "\xf0\x9f\x98");
    FAILS(&w, 0, 1007);
    /* A valid sequence cut by a ping is still valid once the message ends. */
    FRAME(&w, 0, FR_WS_OP_TEXT, "\xf0\x9f");
    FRAME(&w, 1, FR_WS_OP_PING, "");
    FRAME(&w, 1, FR_WS_OP_CONT, "\x98\x80");
    recs_t rs = {.n = 0};
    PARSE(&w, &rs);
    COUNT(&rs, 2);
    MSG(&rs, 1, FR_WS_OP_TEXT, "\xf0\x9f\x98\x80");
    recs_free(&rs);
}

static void test_6_fail_fast(void) {
    /* Invalid bytes are refused as soon as they arrive, before the frame or message ends. */
    char payload[100];
    memset(payload, 'a', sizeof payload);
    memcpy(payload + 5, "\xed\xa0", 2); /* a surrogate's prefix: nothing can make it valid */
    wire_t w = {0};
    frame(&w, 1, FR_WS_OP_TEXT, payload, sizeof payload);
    size_t header = 2 + 4;
    fr_ws_parser_t p;
    fr_ws_parser_init(&p, 1000);
    fr_ws_msg_t m;
    size_t used;
    CHECK_EQ_INT(fr_ws_parse(&p, w.b, header + 6, &used, &m), FR_WS_NEED_MORE);
    CHECK_EQ_INT(fr_ws_parse(&p, w.b + header + 6, 1, &used, &m), FR_WS_ERROR);
    CHECK_EQ_UINT(m.close_code, 1007);
    fr_ws_parser_close(&p);
    wire_free(&w);

    /* The same for a first fragment that is not final. */
    FRAME(&w, 0, FR_WS_OP_TEXT, "ok \xf4\x90");
    fr_ws_parser_init(&p, 1000);
    CHECK_EQ_INT(fr_ws_parse(&p, w.b, w.len, &used, &m), FR_WS_ERROR);
    CHECK_EQ_UINT(m.close_code, 1007);
    fr_ws_parser_close(&p);
    wire_free(&w);
}

static void test_6_binary_not_checked(void) {
    wire_t w = {0};
    FRAME(&w, 1, FR_WS_OP_BINARY, "\xff\xfe\xc0\x80\xed\xa0\x80");
    FRAME(&w, 0, FR_WS_OP_BINARY, "\xf0\x9f");
    FRAME(&w, 1, FR_WS_OP_CONT, "\xff");
    FRAME(&w, 1, FR_WS_OP_PING, "\xff");
    recs_t rs = {.n = 0};
    PARSE(&w, &rs);
    COUNT(&rs, 3);
    MSG(&rs, 0, FR_WS_OP_BINARY, "\xff\xfe\xc0\x80\xed\xa0\x80");
    MSG(&rs, 1, FR_WS_OP_BINARY, "\xf0\x9f\xff");
    MSG(&rs, 2, FR_WS_OP_PING, "\xff");
    recs_free(&rs);
}

/* Appends the UTF-8 encoding of cp (a scalar value) to s; returns its length. */
static size_t put_utf8(char *s, uint32_t cp) {
    if (cp < 0x80) {
        s[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        s[0] = (char)(0xC0 | cp >> 6);
        s[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        s[0] = (char)(0xE0 | cp >> 12);
        s[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        s[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    s[0] = (char)(0xF0 | cp >> 18);
    s[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    s[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    s[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static void test_6_agrees_with_fr_utf8_valid(void) {
    /* Random valid strings, half of them damaged by one byte from where UTF-8's rules change
     * or by losing their last byte, split into two fragments at a random point: the streaming
     * check must agree with the whole-string one every time. */
    static const uint8_t edges[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF,
                                    0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE,
                                    0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF};
    static const uint32_t lo[] = {0, 0x80, 0x800, 0xE000, 0x10000},
                          span[] = {0x80, 0x780, 0xD800 - 0x800, 0x10000 - 0xE000,
                                    0x110000 - 0x10000};
    int valid_seen = 0, invalid_seen = 0, disagreements = 0;
    for (int t = 0; t < 20000; t++) {
        char s[16];
        size_t n = 0, chars = 1 + rng() % 3;
        for (size_t c = 0; c < chars; c++) {
            size_t b = rng() % 5;
            n += put_utf8(s + n, lo[b] + rng() % span[b]);
        }
        switch (rng() % 4) {
        case 0:
            s[rng() % n] = (char)edges[rng() % sizeof edges];
            break;
        case 1:
            n--;
            break;
        default:
            break;
        }
        size_t cut = rng() % (n + 1);
        wire_t w = {0};
        frame(&w, 0, FR_WS_OP_TEXT, s, cut);
        frame(&w, 1, FR_WS_OP_CONT, s + cut, n - cut);
        fr_ws_parser_t p;
        fr_ws_parser_init(&p, 100);
        fr_ws_msg_t m;
        size_t used;
        int rc = fr_ws_parse(&p, w.b, w.len, &used, &m);
        int valid = fr_utf8_valid(s, n);
        if (valid)
            valid_seen++;
        else
            invalid_seen++;
        int ok = valid ? rc == FR_WS_MESSAGE && m.len == n && memcmp(m.data, s, n) == 0
                       : rc == FR_WS_ERROR && m.close_code == 1007;
        if (!ok && disagreements++ < 5)
            fr_t_print_bytes("disagrees on", s, n);
        fr_ws_parser_close(&p);
        wire_free(&w);
    }
    CHECK_EQ_INT(disagreements, 0);
    /* The sample must hold plenty of both kinds, or it proves nothing. */
    CHECK(valid_seen > 5000);
    CHECK(invalid_seen > 5000);
}

/* ---- 7 Close ----------------------------------------------------------------------------- */

static void test_7_empty_close(void) {
    wire_t w = {0};
    FRAME(&w, 1, FR_WS_OP_CLOSE, "");
    recs_t rs = {.n = 0};
    PARSE(&w, &rs);
    COUNT(&rs, 1);
    MSG(&rs, 0, FR_WS_OP_CLOSE, "");
    if (rs.n == 1) {
        CHECK_EQ_UINT(rs.r[0].close_code, FR_WS_CLOSE_NO_STATUS);
        CHECK_EQ_UINT(rs.r[0].reason_len, 0);
    }
    recs_free(&rs);
}

static void test_7_code_and_reason(void) {
    wire_t w = {0};
    close_frame(&w, 1000, "Normal \xce\xba", 9);
    recs_t rs = {.n = 0};
    PARSE(&w, &rs);
    COUNT(&rs, 1);
    MSG(&rs, 0, FR_WS_OP_CLOSE, "\x03\xe8Normal \xce\xba");
    if (rs.n == 1) {
        CHECK_EQ_UINT(rs.r[0].close_code, 1000);
        CHECK_MEM_LIT(rs.r[0].reason, rs.r[0].reason_len, "Normal \xce\xba");
    }
    recs_free(&rs);

    /* The longest reason a control frame can hold. */
    char reason[123];
    memset(reason, 'r', sizeof reason);
    close_frame(&w, 4999, reason, sizeof reason);
    PARSE(&w, &rs);
    COUNT(&rs, 1);
    if (rs.n == 1) {
        CHECK_EQ_INT(rs.r[0].rc, FR_WS_MESSAGE);
        CHECK_EQ_UINT(rs.r[0].close_code, 4999);
        CHECK_MEM(rs.r[0].reason, rs.r[0].reason_len, reason, sizeof reason);
    }
    recs_free(&rs);
}

static void test_7_one_byte_payload(void) {
    wire_t w = {0};
    FRAME(&w, 1, FR_WS_OP_CLOSE, "\x03");
    FAILS(&w, 0, 1002);
    frame_ex(&w, 0x88, 1, 16, "\x03", 1);
    FAILS(&w, 0, 1002);
}

static void test_7_close_codes(void) {
    static const unsigned valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                     1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    static const unsigned invalid[] = {0,    1,    999,  1004, 1005, 1006, 1015,
                                       1016, 1100, 2000, 2999, 5000, 6000, 65535};
    for (size_t k = 0; k < sizeof valid / sizeof valid[0]; k++) {
        CHECK_EQ_INT(fr_ws_close_code_ok(valid[k]), 1);
        wire_t w = {0};
        close_frame(&w, valid[k], "", 0);
        recs_t rs = {.n = 0};
        PARSE(&w, &rs);
        COUNT(&rs, 1);
        if (rs.n == 1 && !CHECK_EQ_UINT(rs.r[0].close_code, valid[k]))
            printf("    code %u\n", valid[k]);
        recs_free(&rs);
    }
    for (size_t k = 0; k < sizeof invalid / sizeof invalid[0]; k++) {
        CHECK_EQ_INT(fr_ws_close_code_ok(invalid[k]), 0);
        wire_t w = {0};
        close_frame(&w, invalid[k], "x", 1);
        FAILS(&w, 0, 1002);
    }
}

static void test_7_reason_not_utf8(void) {
    wire_t w = {0};
    close_frame(&w, 1000, "bad \xff", 5);
    FAILS(&w, 0, 1007);
    close_frame(&w, 1000, "cut \xe2\x82", 6);
    FAILS(&w, 0, 1007);
}

/* ---- 9 Limits ---------------------------------------------------------------------------- */

static void test_9_message_size_limit(void) {
    char p[1001];
    memset(p, 'z', sizeof p);
    wire_t w = {0};
    recs_t rs = {.n = 0};

    frame(&w, 1, FR_WS_OP_TEXT, p, 1000);
    PARSE_MAX(&w, 1000, &rs);
    COUNT(&rs, 1);
    MSG_N(&rs, 0, FR_WS_OP_TEXT, p, 1000);
    recs_free(&rs);

    frame(&w, 0, FR_WS_OP_BINARY, p, 600);
    frame(&w, 1, FR_WS_OP_CONT, p, 400);
    PARSE_MAX(&w, 1000, &rs);
    MSG_N(&rs, 0, FR_WS_OP_BINARY, p, 1000);
    recs_free(&rs);

    frame(&w, 1, FR_WS_OP_TEXT, p, 1001);
    PARSE_MAX(&w, 1000, &rs);
    ERR(&rs, 0, 1009);
    recs_free(&rs);

    frame(&w, 0, FR_WS_OP_TEXT, p, 600);
    frame(&w, 0, FR_WS_OP_CONT, p, 400);
    frame(&w, 1, FR_WS_OP_CONT, p, 1);
    PARSE_MAX(&w, 1000, &rs);
    ERR(&rs, 0, 1009);
    recs_free(&rs);

    /* A limit of zero still allows empty messages; control frames are not counted. */
    FRAME(&w, 1, FR_WS_OP_TEXT, "");
    FRAME(&w, 1, FR_WS_OP_PING, "twelve bytes");
    FRAME(&w, 1, FR_WS_OP_BINARY, "x");
    PARSE_MAX(&w, 0, &rs);
    COUNT(&rs, 3);
    MSG(&rs, 1, FR_WS_OP_PING, "twelve bytes");
    ERR(&rs, 2, 1009);
    recs_free(&rs);
}

static void test_9_limit_from_header_alone(void) {
    /* A frame announcing 2^62 bytes is refused at once, without waiting for or buffering any. */
    static const uint8_t h[] = {0x82, 0xFF, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
    fr_ws_parser_t p;
    fr_ws_parser_init(&p, 1u << 20);
    fr_ws_msg_t m;
    size_t used;
    CHECK_EQ_INT(fr_ws_parse(&p, (const char *)h, sizeof h, &used, &m), FR_WS_ERROR);
    CHECK_EQ_UINT(m.close_code, 1009);
    CHECK_EQ_INT(m.opcode, 0);
    fr_ws_parser_close(&p);
    /* The largest limit is accepted and a small message still parses under it. */
    wire_t w = {0};
    FRAME(&w, 1, FR_WS_OP_TEXT, "fine");
    recs_t rs = {.n = 0};
    PARSE_MAX(&w, SIZE_MAX, &rs);
    MSG(&rs, 0, FR_WS_OP_TEXT, "fine");
    recs_free(&rs);
}

/* ---- Handshake --------------------------------------------------------------------------- */

#define ACCEPT(lit, out) fr_ws_accept_key((lit), sizeof(lit) - 1, (out))

static void test_accept_key(void) {
    char out[29];
    /* The example of RFC 6455 §1.3. */
    memset(out, '#', sizeof out);
    CHECK_EQ_INT(ACCEPT("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
    CHECK_EQ_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    CHECK_EQ_INT(ACCEPT("x3JJHMbDL1EzLkh9GBhXDw==", out), 0);
    CHECK_EQ_STR(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
    /* Optional whitespace around a header value is not part of it. */
    CHECK_EQ_INT(ACCEPT(" \tdGhlIHNhbXBsZSBub25jZQ== ", out), 0);
    CHECK_EQ_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    /* Non-zero pad bits still name 16 bytes. */
    CHECK_EQ_INT(ACCEPT("dGhlIHNhbXBsZSBub25jZR==", out), 0);
}

static void test_accept_key_rejects(void) {
    char out[29];
    CHECK_EQ_INT(ACCEPT("", out), -1);
    CHECK_EQ_INT(ACCEPT("   ", out), -1);
    CHECK_EQ_INT(ACCEPT("dGhlIHNhbXBsZSBub25jZQ", out), -1);    /* no padding */
    CHECK_EQ_INT(ACCEPT("dGhlIHNhbXBsZSBub25jZQ=", out), -1);   /* one pad character */
    CHECK_EQ_INT(ACCEPT("dGhlIHNhbXBsZSBub25jZQ===", out), -1); /* three */
    CHECK_EQ_INT(ACCEPT("dGhlIHNhbXBsZSBub25jZQ=a", out), -1);
    CHECK_EQ_INT(ACCEPT("dGhlIHNhbXBsZSBub25jZ===", out), -1); /* 15 bytes and a stray = */
    CHECK_EQ_INT(ACCEPT("dGhlIHNhbXBsZSBub25jZWE=", out), -1); /* 17 bytes */
    CHECK_EQ_INT(ACCEPT("dGhlIHNhbXBsZSBub25j", out), -1);     /* 15 bytes */
    CHECK_EQ_INT(ACCEPT("dGhlIHNhbXBsZSBub25jZWFh", out), -1); /* 18 bytes */
    CHECK_EQ_INT(ACCEPT("dGhlIHNhbXBs-SBub25jZQ==", out), -1); /* base64url, not base64 */
    CHECK_EQ_INT(ACCEPT("dGhlIHNhbXBs ZSBub25jZQ==", out), -1);
    CHECK_EQ_INT(ACCEPT("dGhlIHNhbXBsZSBub25jZQ==dGhlIHNhbXBsZSBub25jZQ==", out), -1);
    CHECK_EQ_INT(fr_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 23, out), -1);
}

/* ---- Server frames ----------------------------------------------------------------------- */

static void test_header_lengths(void) {
    static const struct {
        int op, fin;
        uint64_t len;
        const char *bytes;
        size_t n;
    } cases[] = {
        {FR_WS_OP_TEXT, 1, 0, "\x81\x00", 2},
        {FR_WS_OP_BINARY, 1, 125, "\x82\x7d", 2},
        {FR_WS_OP_TEXT, 1, 126, "\x81\x7e\x00\x7e", 4},
        {FR_WS_OP_TEXT, 0, 127, "\x01\x7e\x00\x7f", 4},
        {FR_WS_OP_BINARY, 1, 65535, "\x82\x7e\xff\xff", 4},
        {FR_WS_OP_BINARY, 1, 65536, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10},
        {FR_WS_OP_CONT, 1, 0x0102030405060708ull, "\x80\x7f\x01\x02\x03\x04\x05\x06\x07\x08", 10},
        {FR_WS_OP_CONT, 0, 5, "\x00\x05", 2},
        {FR_WS_OP_PING, 1, 3, "\x89\x03", 2},
        {FR_WS_OP_PONG, 1, 0, "\x8a\x00", 2},
        {FR_WS_OP_CLOSE, 1, 2, "\x88\x02", 2},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        uint8_t h[10];
        size_t n = fr_ws_header(h, cases[k].op, cases[k].len, cases[k].fin);
        if (!CHECK_MEM(h, n, cases[k].bytes, cases[k].n))
            printf("    case %zu\n", k);
    }
}

static void test_close_payload(void) {
    uint8_t out[125 + 8];
    size_t n;
    n = fr_ws_close_payload(out, 1000, NULL);
    CHECK_MEM_LIT(out, n, "\x03\xe8");
    n = fr_ws_close_payload(out, 1001, "going away");
    CHECK_MEM_LIT(out, n, "\x03\xe9going away");
    n = fr_ws_close_payload(out, 4000, "");
    CHECK_MEM_LIT(out, n, "\x0f\xa0");
    CHECK_EQ_UINT(fr_ws_close_payload(out, FR_WS_CLOSE_NO_STATUS, "x"), 0);
    CHECK_EQ_UINT(fr_ws_close_payload(out, 0, NULL), 0);
}

static void test_close_payload_truncation(void) {
    uint8_t out[125 + 8];
    char reason[300];
    /* ASCII is cut at exactly 123 bytes. */
    memset(reason, 'a', 200);
    reason[200] = '\0';
    memset(out, '#', sizeof out);
    size_t n = fr_ws_close_payload(out, 1008, reason);
    CHECK_EQ_UINT(n, 125);
    CHECK_EQ_INT(out[125], '#');
    CHECK_MEM(out + 2, n - 2, reason, 123);
    /* 123 bytes exactly fit whole. */
    reason[123] = '\0';
    CHECK_EQ_UINT(fr_ws_close_payload(out, 1008, reason), 125);
    /* A multi-byte character across the limit is dropped whole, at every offset. */
    static const char *chars[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
    for (size_t c = 0; c < 3; c++) {
        size_t clen = strlen(chars[c]);
        for (size_t lead = 118; lead <= 123; lead++) {
            memset(reason, 'a', lead);
            memcpy(reason + lead, chars[c], clen);
            strcpy(reason + lead + clen, "tail");
            n = fr_ws_close_payload(out, 1000, reason);
            size_t expect = lead + clen <= 123 ? 123 : lead; /* "tail" fills the rest */
            if (!CHECK_EQ_UINT(n - 2, expect))
                printf("    character %zu after %zu bytes\n", c, lead);
            CHECK(fr_utf8_valid((const char *)out + 2, n - 2));
            CHECK(n <= 125);
        }
    }
}

static void test_server_close_parses_back(void) {
    /* A close frame built by the server, masked as a client would send it, parses back. */
    uint8_t payload[125];
    size_t n = fr_ws_close_payload(payload, 1011, "internal \xe2\x82\xac");
    uint8_t h[10];
    size_t hl = fr_ws_header(h, FR_WS_OP_CLOSE, n, 1);
    CHECK_EQ_UINT(hl, 2);
    wire_t w = {0};
    frame_ex(&w, h[0], 1, 0, payload, n);
    recs_t rs = {.n = 0};
    PARSE(&w, &rs);
    COUNT(&rs, 1);
    if (rs.n == 1) {
        CHECK_EQ_UINT(rs.r[0].close_code, 1011);
        CHECK_MEM_LIT(rs.r[0].reason, rs.r[0].reason_len, "internal \xe2\x82\xac");
    }
    recs_free(&rs);
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_1_1_text_lengths);
    FR_RUN(test_1_2_binary_lengths);
    FR_RUN(test_1_non_minimal_lengths_allowed);
    FR_RUN(test_1_64bit_length_top_bit);
    FR_RUN(test_1_unmasked_frame);
    FR_RUN(test_1_several_frames_in_one_buffer);
    FR_RUN(test_1_byte_at_a_time_mixed_input);
    FR_RUN(test_1_large_then_small_messages);
    FR_RUN(test_2_ping_pong_payloads);
    FR_RUN(test_2_ping_over_125);
    FR_RUN(test_2_fragmented_ping);
    FR_RUN(test_2_many_pings);
    FR_RUN(test_3_reserved_bits);
    FR_RUN(test_4_reserved_opcodes);
    FR_RUN(test_5_text_in_fragments);
    FR_RUN(test_5_continuation_without_start);
    FR_RUN(test_5_new_message_while_fragmented);
    FR_RUN(test_5_control_between_fragments);
    FR_RUN(test_6_valid_split_across_fragments);
    FR_RUN(test_6_invalid_text);
    FR_RUN(test_6_fail_fast);
    FR_RUN(test_6_binary_not_checked);
    FR_RUN(test_6_agrees_with_fr_utf8_valid);
    FR_RUN(test_7_empty_close);
    FR_RUN(test_7_code_and_reason);
    FR_RUN(test_7_one_byte_payload);
    FR_RUN(test_7_close_codes);
    FR_RUN(test_7_reason_not_utf8);
    FR_RUN(test_9_message_size_limit);
    FR_RUN(test_9_limit_from_header_alone);
    FR_RUN(test_accept_key);
    FR_RUN(test_accept_key_rejects);
    FR_RUN(test_header_lengths);
    FR_RUN(test_close_payload);
    FR_RUN(test_close_payload_truncation);
    FR_RUN(test_server_close_parses_back);
    return FR_TEST_END();
}
