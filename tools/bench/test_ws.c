/* Unit tests of freshet-bench's WebSocket codecs: SHA-1 and the handshake's accept value, the
 * client's masked control frames, the server-frame reader, the envelope reader and the
 * payload's two forms. Every input is fed whole and then one byte at a time, since a read may
 * end anywhere. */
#include "fr_test.h"

#include <stdlib.h>

#include "bench.h"
#include "envelope.h"
#include "payload.h"
#include "ws_codec.h"
#include "ws_reader.h"

/* What the hooks saw. */
typedef struct seen_s {
    int opens, events, ids, pings;
    char event[16];
    char data[FR_PAYLOAD_HEAD + 1];
    char id[FR_SSE_ID_MAX];
    char ping[FR_WS_CONTROL_MAX + 1];
    int id_long;
} seen_t;

static void on_open(void *ud) {
    ((seen_t *)ud)->opens++;
}

static void on_event(void *ud, const char *event, size_t elen, const char *data, size_t dlen) {
    seen_t *s = ud;
    s->events++;
    snprintf(s->event, sizeof s->event, "%.*s", (int)elen, event);
    snprintf(s->data, sizeof s->data, "%.*s", (int)dlen, data);
}

static void on_id(void *ud, const char *id, size_t len, int too_long) {
    seen_t *s = ud;
    s->ids++;
    s->id_long = too_long;
    snprintf(s->id, sizeof s->id, "%.*s", (int)len, id);
}

static void on_ping(void *ud, const char *payload, size_t len) {
    seen_t *s = ud;
    s->pings++;
    snprintf(s->ping, sizeof s->ping, "%.*s", (int)len, payload);
}

static const fr_ws_hooks_t hooks = {on_open, on_event, on_id, on_ping};

/* The RFC 6455 example key, whose accept value the RFC gives. */
static const char *const key = "dGhlIHNhbXBsZSBub25jZQ==";

static const char head_ok[] = "HTTP/1.1 101 Switching Protocols\r\n"
                              "Upgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                              "\r\n";

/* Appends an unmasked server frame to buf at *n. */
static void frame(char *buf, size_t *n, int fin, int opcode, const char *payload, size_t len) {
    unsigned char *b = (unsigned char *)buf + *n;
    size_t h = 2;
    b[0] = (unsigned char)((fin ? 0x80 : 0) | opcode);
    if (len < 126) {
        b[1] = (unsigned char)len;
    } else if (len < 65536) {
        b[1] = 126;
        b[2] = (unsigned char)(len >> 8);
        b[3] = (unsigned char)len;
        h = 4;
    } else {
        b[1] = 127;
        for (int i = 0; i < 8; i++)
            b[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
        h = 10;
    }
    memcpy(b + h, payload, len);
    *n += h + len;
}

static void text(char *buf, size_t *n, const char *s) {
    frame(buf, n, 1, FR_WS_OP_TEXT, s, strlen(s));
}

/* Feeds `len` bytes whole, or one at a time; returns the last code. */
static int feed(fr_ws_reader_t *r, const char *buf, size_t len, int bytewise, seen_t *s) {
    if (!bytewise)
        return fr_ws_reader_feed(r, buf, len, &hooks, s);
    int rc = FR_WS_OK;
    for (size_t i = 0; i < len && rc == FR_WS_OK; i++)
        rc = fr_ws_reader_feed(r, buf + i, 1, &hooks, s);
    return rc;
}

static void test_sha1(void) {
    static const struct {
        const char *in, *hex;
    } cases[] = {
        {"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
        {"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "84983e441c3bd26ebaae4aa1f95129e5e54670f1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t d[20];
        char hex[41];
        fr_sha1(cases[i].in, strlen(cases[i].in), d);
        for (int j = 0; j < 20; j++)
            snprintf(hex + 2 * j, 3, "%02x", d[j]);
        CHECK_EQ_STR(hex, cases[i].hex);
    }
    /* A million 'a': many blocks, and a length that needs the second padding block. */
    char *a = malloc(1000000);
    REQUIRE(a != NULL);
    memset(a, 'a', 1000000);
    uint8_t d[20];
    char hex[41];
    fr_sha1(a, 1000000, d);
    free(a);
    for (int j = 0; j < 20; j++)
        snprintf(hex + 2 * j, 3, "%02x", d[j]);
    CHECK_EQ_STR(hex, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}

static void test_accept_and_key(void) {
    char accept[FR_WS_ACCEPT_LEN + 1];
    fr_ws_accept(key, strlen(key), accept);
    CHECK_EQ_STR(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    /* The RFC's key is base64 of "the sample nonce". */
    char k[FR_WS_KEY_LEN + 1];
    fr_ws_key((const uint8_t *)"the sample nonce", k);
    CHECK_EQ_STR(k, key);
    char b[8];
    CHECK_EQ_INT(fr_base64((const uint8_t *)"f", 1, b), 4);
    CHECK_EQ_STR(b, "Zg==");
    CHECK_EQ_INT(fr_base64((const uint8_t *)"fo", 2, b), 4);
    CHECK_EQ_STR(b, "Zm8=");
}

static void test_control_frame(void) {
    char out[FR_WS_CONTROL_FRAME_MAX];
    const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    /* RFC 6455, 5.7: a masked "Hello". */
    size_t n = fr_ws_control(out, FR_WS_OP_TEXT, "Hello", 5, mask);
    static const unsigned char want[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                         0x7f, 0x9f, 0x4d, 0x51, 0x58};
    CHECK_MEM(out, n, want, sizeof want);
    n = fr_ws_control(out, FR_WS_OP_CLOSE, "\x03\xe8", 2, mask);
    CHECK_EQ_INT(n, 8);
    CHECK_EQ_INT((unsigned char)out[0], 0x88);
    CHECK_EQ_INT((unsigned char)out[1], 0x82);
    CHECK_EQ_INT((unsigned char)(out[6] ^ mask[0]), 0x03);
    CHECK_EQ_INT((unsigned char)(out[7] ^ mask[1]), 0xe8);
}

/* The envelope freshet sends for a body published as a string, then a ping, a notice, an event
 * split over three frames around a ping, and a close. */
static void test_reader_stream(void) {
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        static char buf[4096];
        size_t n = 0;
        memcpy(buf, head_ok, sizeof head_ok - 1);
        n = sizeof head_ok - 1;
        text(buf, &n,
             "{\"v\":1,\"topic\":\"t0\",\"id\":\"1795260561381-0\",\"data\":\"{\\\"t\\\":"
             "1718000000123456789,\\\"s\\\":42,\\\"k\\\":0,\\\"w\\\":0,\\\"p\\\":\\\"xxxx\\\"}\"}");
        fr_ws_reader_t r;
        seen_t s;
        memset(&s, 0, sizeof s);
        fr_ws_reader_init(&r, key);
        CHECK_EQ_INT(feed(&r, buf, n, bytewise, &s), FR_WS_OK);
        CHECK_EQ_INT(s.opens, 1);
        CHECK_EQ_INT(s.events, 1);
        CHECK_EQ_INT(s.ids, 1);
        CHECK_EQ_STR(s.id, "1795260561381-0");
        CHECK_EQ_STR(s.event, "");
        CHECK_EQ_STR(s.data, "{\"t\":1718000000123456789,\"s\":42,\"k\":0,\"w\":0,\"p\":\"xxxx\"}");
        fr_payload_t p;
        CHECK_EQ_INT(fr_payload_parse(s.data, strlen(s.data), &p), 0);
        CHECK_EQ_INT(p.seq, 42);

        n = 0;
        frame(buf, &n, 1, FR_WS_OP_PING, "hb", 2);
        text(buf, &n, "{\"v\":1,\"type\":\"dropped\",\"dropped\":3}");
        const char *m = "{\"v\":1,\"id\":\"9-1\",\"event\":\"tick\",\"data\":{\"t\":5,\"s\":1}}";
        frame(buf, &n, 0, FR_WS_OP_TEXT, m, 10);
        frame(buf, &n, 0, FR_WS_OP_CONT, m + 10, 20);
        frame(buf, &n, 1, FR_WS_OP_PING, "", 0);
        frame(buf, &n, 1, FR_WS_OP_CONT, m + 30, strlen(m) - 30);
        CHECK_EQ_INT(feed(&r, buf, n, bytewise, &s), FR_WS_OK);
        CHECK_EQ_INT(s.pings, 2);
        CHECK_EQ_INT(s.events, 3);
        CHECK_EQ_INT(s.ids, 2);
        CHECK_EQ_STR(s.id, "9-1");
        CHECK_EQ_STR(s.event, "tick");
        CHECK_EQ_STR(s.data, "{\"t\":5,\"s\":1}");

        n = 0;
        frame(buf, &n, 1, FR_WS_OP_CLOSE, "\x03\xe9going", 7);
        CHECK_EQ_INT(feed(&r, buf, n, bytewise, &s), FR_WS_CLOSED);
        CHECK_EQ_INT(r.close_code, 1001);
    }
}

/* A long message (64-bit length) keeps only the head of its data; a notice's type is the name. */
static void test_reader_long_and_notice(void) {
    size_t big = 70000;
    char *msg = malloc(big + 64), *buf = malloc(big + 256);
    REQUIRE(msg != NULL && buf != NULL);
    int k = snprintf(msg, 64,
                     "{\"data\":\"{\\\"t\\\":1,\\\"s\\\":2,\\\"k\\\":3,\\\"w\\\":0,\\\"p\\\":\\\"");
    memset(msg + k, 'x', big - (size_t)k - 4);
    memcpy(msg + big - 4, "\\\"\"}", 4);
    size_t n = sizeof head_ok - 1;
    memcpy(buf, head_ok, n);
    frame(buf, &n, 1, FR_WS_OP_BINARY, msg, big);
    fr_ws_reader_t r;
    seen_t s;
    memset(&s, 0, sizeof s);
    fr_ws_reader_init(&r, key);
    CHECK_EQ_INT(feed(&r, buf, n, 0, &s), FR_WS_OK);
    CHECK_EQ_INT(s.events, 1);
    CHECK_EQ_INT(s.ids, 0);
    CHECK_EQ_INT(strlen(s.data), FR_PAYLOAD_HEAD);
    fr_payload_t p;
    CHECK_EQ_INT(fr_payload_parse(s.data, strlen(s.data), &p), 0);
    CHECK_EQ_INT(p.topic, 3);
    free(msg);
    free(buf);
}

static int run_one(const char *bytes, size_t len, seen_t *s) {
    fr_ws_reader_t r;
    memset(s, 0, sizeof *s);
    fr_ws_reader_init(&r, key);
    return fr_ws_reader_feed(&r, bytes, len, &hooks, s);
}

static void test_reader_refusals(void) {
    seen_t s;
    const char *h404 = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    CHECK_EQ_INT(run_one(h404, strlen(h404), &s), FR_WS_ESTATUS);
    const char *bad =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n"
        "\r\n";
    CHECK_EQ_INT(run_one(bad, strlen(bad), &s), FR_WS_EUPGRADE);
    CHECK_EQ_INT(s.opens, 0);
    const char *noup = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    CHECK_EQ_INT(run_one(noup, strlen(noup), &s), FR_WS_EUPGRADE);
    CHECK_EQ_INT(run_one("garbage\r\n", 9, &s), FR_WS_EPROTO);

    /* Frames a server must not send: masked, RSV bits, a continuation with no message, a new
     * message inside one, a fragmented or long control frame, an unknown opcode. */
    static const unsigned char frames[][4] = {
        {0x81, 0x80, 0, 0}, {0xc1, 0x00, 0, 0},       {0x80, 0x00, 0, 0}, {0x01, 0x00, 0x01, 0x00},
        {0x09, 0x00, 0, 0}, {0x89, 0x7e, 0x00, 0x7e}, {0x83, 0x00, 0, 0},
    };
    static const size_t lens[] = {2, 2, 2, 4, 2, 4, 2};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        char buf[256];
        size_t n = sizeof head_ok - 1;
        memcpy(buf, head_ok, n);
        memcpy(buf + n, frames[i], lens[i]);
        CHECK_EQ_INT(run_one(buf, n + lens[i], &s), FR_WS_EPROTO);
        CHECK_EQ_INT(s.opens, 1);
    }
}

/* Envelope reading on its own: member order, spacing, escapes, other values, garbage. */
static void test_envelope(void) {
    static const struct {
        const char *in;
        int ok;
        const char *id, *event, *type, *data;
    } cases[] = {
        {"{\"data\":\"a\\\"b\\\\c\\/d\\u0041\\u00e9\",\"id\":\"7\"}", 1, "7", "", "",
         "a\"b\\c/dA?"},
        {" { \"id\" : \"x\" , \"event\" : \"message\" , \"data\" : [1, {\"a\": \"]}\"}] } ", 1, "x",
         "message", "", "[1, {\"a\": \"]}\"}]"},
        {"{\"v\":1,\"type\":\"reset\",\"id\":\"5-0\"}", 1, "5-0", "", "reset", ""},
        {"{\"data\":12.5e3,\"v\":true}", 1, "", "", "", "12.5e3"},
        {"{\"nested\":{\"id\":\"no\",\"data\":\"no\"},\"idx\":\"no\"}", 1, "", "", "", ""},
        {"{\"id\":\"a\",\"id\":\"b\"}", 1, "b", "", "", ""},
        {"not json", 0, "", "", "", ""},
        {"{\"id\":\"cut", 0, "cut", "", "", ""},
        {"{\"data\":\"\\uZZZZ\"}", 0, "", "", "", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int bytewise = 0; bytewise < 2; bytewise++) {
            fr_envelope_t e;
            fr_envelope_init(&e);
            const char *in = cases[i].in;
            if (bytewise)
                for (size_t j = 0; in[j]; j++)
                    fr_envelope_feed(&e, in + j, 1);
            else
                fr_envelope_feed(&e, in, strlen(in));
            CHECK_EQ_INT(fr_envelope_end(&e), cases[i].ok);
            CHECK_MEM(e.id, e.idlen, cases[i].id, strlen(cases[i].id));
            CHECK_MEM(e.event, e.elen, cases[i].event, strlen(cases[i].event));
            CHECK_MEM(e.type, e.tlen, cases[i].type, strlen(cases[i].type));
            CHECK_MEM(e.data, e.dlen, cases[i].data, strlen(cases[i].data));
        }
    }
    /* An id longer than the room for it is marked. */
    char msg[300];
    snprintf(msg, sizeof msg, "{\"id\":\"%0200d\"}", 7);
    fr_envelope_t e;
    fr_envelope_init(&e);
    fr_envelope_feed(&e, msg, strlen(msg));
    CHECK_EQ_INT(fr_envelope_end(&e), 1);
    CHECK((e.flags & FR_ENV_ID_LONG) != 0);
    CHECK_EQ_INT(e.idlen, FR_SSE_ID_MAX - 1);
}

/* Both payload forms: the longest fields fit the minimum body and the head a reader keeps, and
 * parse back; "c" without "g" is not a payload. */
static void test_payload_forms(void) {
    char buf[FR_PAYLOAD_MIN_CONNS + 64];
    fr_payload_t in, out;
    memset(&in, 0, sizeof in);
    in.t = UINT64_MAX;
    in.seq = UINT64_MAX;
    in.topic = UINT32_MAX;
    in.warmup = 1;
    size_t n = fr_payload_format(buf, &in, 0);
    CHECK(n <= FR_PAYLOAD_MIN);
    CHECK_EQ_INT(fr_payload_parse(buf, n, &out), 0);
    CHECK_EQ_INT(out.conns, 0);
    CHECK(out.seq == UINT64_MAX && out.topic == UINT32_MAX && out.warmup == 1);

    in.conns = 1;
    in.conn = FR_MAX_PUB_CONNS - 1;
    in.g = UINT64_MAX;
    n = fr_payload_format(buf, &in, 0);
    CHECK(n <= FR_PAYLOAD_MIN_CONNS);
    CHECK((size_t)(strstr(buf, "\"p\":") - buf) < FR_PAYLOAD_HEAD);
    CHECK_EQ_INT(fr_payload_parse(buf, FR_PAYLOAD_HEAD < n ? FR_PAYLOAD_HEAD : n, &out), 0);
    CHECK_EQ_INT(out.conns, 1);
    CHECK_EQ_INT(out.conn, FR_MAX_PUB_CONNS - 1);
    CHECK(out.g == UINT64_MAX && out.seq == UINT64_MAX && out.warmup == 1);

    in.t = 5, in.seq = 7, in.topic = 2, in.conn = 3, in.g = 29, in.warmup = 0;
    n = fr_payload_format(buf, &in, 150);
    CHECK_EQ_INT(n, 150);
    buf[n] = '\0';
    const char *head = "{\"t\":5,\"s\":7,\"k\":2,\"c\":3,\"g\":29,\"w\":0,\"p\":\"xx";
    CHECK(strncmp(buf, head, strlen(head)) == 0);
    CHECK_EQ_INT(fr_payload_parse(buf, n, &out), 0);
    CHECK(out.seq == 7 && out.topic == 2 && out.conn == 3 && out.g == 29 && !out.warmup);

    const char *no_g = "{\"t\":5,\"s\":7,\"k\":2,\"c\":3,\"w\":0,\"p\":\"\"}";
    CHECK_EQ_INT(fr_payload_parse(no_g, strlen(no_g), &out), -1);
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_sha1);
    FR_RUN(test_accept_and_key);
    FR_RUN(test_control_frame);
    FR_RUN(test_reader_stream);
    FR_RUN(test_reader_long_and_notice);
    FR_RUN(test_reader_refusals);
    FR_RUN(test_envelope);
    FR_RUN(test_payload_forms);
    return FR_TEST_END();
}
