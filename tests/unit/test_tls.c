/* TLS under the bytes (src/http/tls.c), without a socket: an OpenSSL client on memory BIOs talks
 * to the server side, and the tests check the handshake and ALPN, records both ways (small
 * buffers gathered into one record), input cut at any byte, garbage and alerts, close_notify,
 * the context's errors, a context freed while its connections live on, and resumption across
 * two contexts (two workers). */
#include <string.h>

#include "fr_test.h"
#include "codec/tls_records.h"
#include "http/tls.h"
#include "tls_fixture.h"

static tls_fx_files_t files;
static const unsigned char server_alpn[] = "\x08http/1.1";

static fr_tls_ctx_t *ctx_new(void) {
    char err[512] = "";
    fr_tls_ctx_t *ctx =
        fr_tls_ctx_new(files.cert, files.key, server_alpn, sizeof server_alpn - 1, err, sizeof err);
    if (!ctx)
        printf("    fr_tls_ctx_new: %s\n", err);
    return ctx;
}

/* A server connection and a client, and what moved between them. */
typedef struct {
    fr_tls_t srv;
    tls_fx_client_t cli;
    fr_buf_t out;      /* the server's ciphertext not yet given to the client */
    fr_buf_t got;      /* plaintext the server read */
    ssize_t last;      /* the server's last fr_tls_read result */
    char plain[FR_TLS_RECORD];
} pair_t;

static int pair_open(pair_t *p, fr_tls_ctx_t *ctx, const unsigned char *alpn, unsigned alpn_len) {
    memset(p, 0, sizeof *p);
    if (fr_tls_open(&p->srv, ctx) < 0)
        return -1;
    return tls_fx_client_new(&p->cli, alpn, alpn_len);
}

static void pair_close(pair_t *p) {
    fr_tls_close(&p->srv);
    tls_fx_client_free(&p->cli);
    fr_buf_free(&p->out);
    fr_buf_free(&p->got);
}

/* The server reads bytes, in pieces of `step` (0: at once), until each piece is used up. */
static void server_feed(pair_t *p, const char *bytes, size_t n, size_t step) {
    while (n > 0 && p->last >= 0) {
        size_t k = step && step < n ? step : n;
        const char *in = bytes;
        size_t left = k;
        do {
            p->last = fr_tls_read(&p->srv, &in, &left, p->plain, sizeof p->plain, &p->out);
            if (p->last > 0)
                fr_buf_put(&p->got, p->plain, (size_t)p->last);
        } while (p->last > 0);
        if (p->last == FR_TLS_AGAIN && left != 0) {
            printf("    fr_tls_read wants more with %zu bytes unread\n", left);
            p->last = -100;
        }
        bytes += k;
        n -= k;
    }
}

/* Moves bytes both ways until neither side has more to say. */
static void pump(pair_t *p, size_t step) {
    for (int round = 0; round < 50; round++) {
        if (!SSL_is_init_finished(p->cli.ssl))
            (void)SSL_do_handshake(p->cli.ssl);
        size_t n;
        char *bytes = tls_fx_client_output(&p->cli, &n);
        int moved = bytes != NULL || p->out.len > 0;
        if (bytes)
            server_feed(p, bytes, n, step);
        free(bytes);
        if (p->out.len) {
            tls_fx_client_input(&p->cli, p->out.p, p->out.len);
            p->out.len = 0;
        }
        if (!moved)
            return;
    }
}

/* Everything the client can read now, appended to b; returns SSL_read_ex's last error. */
static int client_read(pair_t *p, fr_buf_t *b) {
    char buf[4096];
    size_t n;
    while (SSL_read_ex(p->cli.ssl, buf, sizeof buf, &n) == 1)
        fr_buf_put(b, buf, n);
    return SSL_get_error(p->cli.ssl, 0);
}

/* A pair with its handshake done (no ALPN). Returns 0, or -1 when either failed. */
static int pair_up(pair_t *p, fr_tls_ctx_t *ctx) {
    if (pair_open(p, ctx, NULL, 0) < 0)
        return -1;
    pump(p, 0);
    return p->srv.ready ? 0 : -1;
}

/* The server side runs on its own records: no SSL any more. */
static int switched(const pair_t *p) {
    return p->srv.ssl == NULL && p->srv.rec != NULL && p->srv.keys == NULL;
}

/* The client sends msg (cut into pieces of `step` bytes on the way); the server must read it. */
static void check_upstream(pair_t *p, const char *msg, size_t len, size_t step) {
    p->got.len = 0;
    size_t w;
    REQUIRE(SSL_write_ex(p->cli.ssl, msg, len, &w) == 1);
    pump(p, step);
    CHECK_EQ_INT(p->last, FR_TLS_AGAIN);
    CHECK_MEM(p->got.p, p->got.len, msg, len);
}

/* The server writes len bytes of a pattern in one buffer; the client must read them all. */
static void check_downstream(pair_t *p, size_t len, unsigned seed) {
    char *data = malloc(len);
    for (size_t i = 0; i < len; i++)
        data[i] = (char)(i * 31 + seed);
    uv_buf_t b = uv_buf_init(data, (unsigned)len);
    CHECK_EQ_INT(fr_tls_write_bufs(&p->srv, &b, 1, &p->out), 0);
    tls_fx_client_input(&p->cli, p->out.p, p->out.len);
    p->out.len = 0;
    fr_buf_t read = {0};
    CHECK_EQ_INT(client_read(p, &read), SSL_ERROR_WANT_READ);
    CHECK_EQ_UINT(read.len, len);
    CHECK(read.len == len && memcmp(read.p, data, len) == 0);
    fr_buf_free(&read);
    free(data);
}

static void test_handshake_and_alpn(void) {
    fr_tls_ctx_t *ctx = ctx_new();
    REQUIRE(ctx != NULL);
    pair_t p;
    REQUIRE(pair_open(&p, ctx, (const unsigned char *)"\x02h2\x08http/1.1", 12) == 0);
    pump(&p, 0);
    CHECK_EQ_INT(p.last, FR_TLS_AGAIN);
    CHECK(p.srv.ready);
    CHECK(SSL_is_init_finished(p.cli.ssl));
    unsigned len;
    const unsigned char *name = fr_tls_alpn(&p.srv, &len);
    CHECK_MEM(name, len, "http/1.1", 8);
    CHECK_EQ_STR(fr_tls_version(&p.srv), "TLSv1.3");
    pair_close(&p);

    /* A client without ALPN is served (as HTTP/1.1, which conn.c decides). */
    REQUIRE(pair_open(&p, ctx, NULL, 0) == 0);
    pump(&p, 0);
    CHECK(p.srv.ready);
    CHECK(fr_tls_alpn(&p.srv, &len) == NULL);
    CHECK_EQ_UINT(len, 0);
    pair_close(&p);

    /* Nothing in common: no_application_protocol, the handshake fails. */
    REQUIRE(pair_open(&p, ctx, (const unsigned char *)"\x02h2", 3) == 0);
    pump(&p, 0);
    CHECK_EQ_INT(p.last, FR_TLS_ERROR);
    CHECK(!p.srv.ready);
    CHECK(p.srv.failed);
    CHECK(!SSL_is_init_finished(p.cli.ssl));
    pair_close(&p);
    fr_tls_ctx_free(ctx);
}

static void test_tls12(void) {
    fr_tls_ctx_t *ctx = ctx_new();
    REQUIRE(ctx != NULL);
    pair_t p;
    REQUIRE(pair_open(&p, ctx, NULL, 0) == 0);
    SSL_set_max_proto_version(p.cli.ssl, TLS1_2_VERSION);
    pump(&p, 0);
    CHECK(p.srv.ready);
    CHECK_EQ_STR(fr_tls_version(&p.srv), "TLSv1.2");
    CHECK_CONTAINS(fr_tls_cipher(&p.srv), "ECDHE");
    /* A TLS 1.2 session keeps its SSL (only TLS 1.3 ones leave OpenSSL), and works. */
    CHECK(p.srv.ssl != NULL && p.srv.rec == NULL && p.srv.keys == NULL);
    check_upstream(&p, "GET / HTTP/1.1\r\n\r\n", 18, 1);
    check_downstream(&p, 40000, 1);
    pair_close(&p);

    /* TLS 1.1 is refused. */
    REQUIRE(pair_open(&p, ctx, NULL, 0) == 0);
    SSL_set_min_proto_version(p.cli.ssl, TLS1_VERSION);
    SSL_set_max_proto_version(p.cli.ssl, TLS1_1_VERSION);
    SSL_set_security_level(p.cli.ssl, 0);
    pump(&p, 0);
    CHECK_EQ_INT(p.last, FR_TLS_ERROR);
    CHECK(!p.srv.ready);
    pair_close(&p);
    fr_tls_ctx_free(ctx);
}

static void test_records_both_ways(void) {
    fr_tls_ctx_t *ctx = ctx_new();
    REQUIRE(ctx != NULL);
    pair_t p;
    REQUIRE(pair_up(&p, ctx) == 0);

    static const char req[] = "GET /sub/a HTTP/1.1\r\nHost: x\r\n\r\n";
    size_t w;
    REQUIRE(SSL_write_ex(p.cli.ssl, req, sizeof req - 1, &w) == 1);
    pump(&p, 0);
    CHECK_MEM(p.got.p, p.got.len, req, sizeof req - 1);

    /* 100 buffers of 30 bytes: one record (TLS 1.3 AES-GCM adds 22 bytes). */
    char small[100][30];
    uv_buf_t bufs[100];
    for (int i = 0; i < 100; i++) {
        memset(small[i], 'a' + i % 26, sizeof small[i]);
        bufs[i] = uv_buf_init(small[i], sizeof small[i]);
    }
    fr_buf_t out = {0};
    CHECK_EQ_INT(fr_tls_write_bufs(&p.srv, bufs, 100, &out), 0);
    CHECK_EQ_UINT(out.len, 3000 + 22);
    tls_fx_client_input(&p.cli, out.p, out.len);
    fr_buf_t read = {0};
    CHECK_EQ_INT(client_read(&p, &read), SSL_ERROR_WANT_READ);
    REQUIRE(read.len == 3000);
    for (int i = 0; i < 100; i++)
        CHECK_MEM(read.p + 30 * i, 30, small[i], 30);

    /* A large buffer between small ones: every byte arrives, in order. */
    size_t big_len = 3 * FR_TLS_RECORD + 1234;
    char *big = malloc(big_len);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (char)(i * 7);
    uv_buf_t mixed[3] = {uv_buf_init(small[0], 30), uv_buf_init(big, (unsigned)big_len),
                         uv_buf_init(small[1], 30)};
    out.len = 0;
    read.len = 0;
    CHECK_EQ_INT(fr_tls_write_bufs(&p.srv, mixed, 3, &out), 0);
    tls_fx_client_input(&p.cli, out.p, out.len);
    client_read(&p, &read);
    REQUIRE(read.len == big_len + 60);
    CHECK_MEM(read.p, 30, small[0], 30);
    CHECK(memcmp(read.p + 30, big, big_len) == 0);
    CHECK_MEM(read.p + 30 + big_len, 30, small[1], 30);
    /* Four full records and a short one: the small buffers rode in the large one's records. */
    CHECK(out.len <= big_len + 60 + 5 * 22);
    free(big);
    fr_buf_free(&out);
    fr_buf_free(&read);
    pair_close(&p);
    fr_tls_ctx_free(ctx);
}

/* The handshake and a request, delivered one byte per read, then 7 bytes per read. */
static void test_input_cut_anywhere(void) {
    fr_tls_ctx_t *ctx = ctx_new();
    REQUIRE(ctx != NULL);
    static const size_t steps[] = {1, 7};
    for (size_t s = 0; s < 2; s++) {
        pair_t p;
        REQUIRE(pair_open(&p, ctx, (const unsigned char *)"\x08http/1.1", 9) == 0);
        pump(&p, steps[s]);
        CHECK(p.srv.ready);
        static const char req[] = "POST /pub/t HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
        size_t w;
        REQUIRE(SSL_write_ex(p.cli.ssl, req, sizeof req - 1, &w) == 1);
        pump(&p, steps[s]);
        CHECK_MEM(p.got.p, p.got.len, req, sizeof req - 1);
        pair_close(&p);
    }
    fr_tls_ctx_free(ctx);
}

static void test_garbage_and_alerts(void) {
    fr_tls_ctx_t *ctx = ctx_new();
    REQUIRE(ctx != NULL);
    /* Cleartext HTTP instead of a ClientHello. */
    pair_t p;
    REQUIRE(pair_open(&p, ctx, NULL, 0) == 0);
    static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    server_feed(&p, http, sizeof http - 1, 0);
    CHECK_EQ_INT(p.last, FR_TLS_ERROR);
    CHECK(strlen(fr_tls_why()) > 0);
    CHECK(p.srv.failed);
    /* Failed is final: reading again, writing or shutting down does nothing. */
    const char *in = "x";
    size_t n = 1;
    CHECK_EQ_INT(fr_tls_read(&p.srv, &in, &n, p.plain, sizeof p.plain, &p.out), FR_TLS_ERROR);
    uv_buf_t b = uv_buf_init((char *)"x", 1);
    CHECK_EQ_INT(fr_tls_write_bufs(&p.srv, &b, 1, &p.out), -1);
    size_t before = p.out.len;
    fr_tls_shutdown(&p.srv, &p.out);
    CHECK_EQ_UINT(p.out.len, before);
    pair_close(&p);

    /* A record whose bytes were changed after the handshake fails its authentication. */
    REQUIRE(pair_up(&p, ctx) == 0);
    size_t w;
    REQUIRE(SSL_write_ex(p.cli.ssl, "hello", 5, &w) == 1);
    char *bytes = tls_fx_client_output(&p.cli, &n);
    REQUIRE(bytes != NULL && n > 10);
    bytes[n - 3] ^= 1;
    server_feed(&p, bytes, n, 0);
    free(bytes);
    CHECK_EQ_INT(p.last, FR_TLS_ERROR);
    CHECK_EQ_UINT(p.got.len, 0);
    /* The server sent an alert (bad_record_mac) on its way out. */
    CHECK(p.out.len > 0);
    pair_close(&p);
    fr_tls_ctx_free(ctx);
}

static void test_close_notify(void) {
    fr_tls_ctx_t *ctx = ctx_new();
    REQUIRE(ctx != NULL);
    pair_t p;
    REQUIRE(pair_up(&p, ctx) == 0);
    /* The client says goodbye: the server reads FR_TLS_CLOSED. */
    SSL_shutdown(p.cli.ssl);
    pump(&p, 0);
    CHECK_EQ_INT(p.last, FR_TLS_CLOSED);
    pair_close(&p);

    /* The server says goodbye: the client reads a clean end. */
    REQUIRE(pair_up(&p, ctx) == 0);
    fr_tls_shutdown(&p.srv, &p.out);
    CHECK(p.out.len > 0);
    tls_fx_client_input(&p.cli, p.out.p, p.out.len);
    fr_buf_t read = {0};
    CHECK_EQ_INT(client_read(&p, &read), SSL_ERROR_ZERO_RETURN);
    fr_buf_free(&read);
    pair_close(&p);
    fr_tls_ctx_free(ctx);
}

static void test_ctx_errors(void) {
    char err[512];
    const unsigned char *alpn = server_alpn;
    size_t alen = sizeof server_alpn - 1;
    char path[320], other_cert[320], other_key[320], locked[320];

    snprintf(path, sizeof path, "%s/missing.pem", files.dir);
    CHECK(fr_tls_ctx_new(path, files.key, alpn, alen, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "cannot read the certificate");
    CHECK_CONTAINS(err, "missing.pem");
    CHECK_CONTAINS(err, "No such file");
    CHECK(fr_tls_ctx_new(files.cert, path, alpn, alen, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "cannot read the key");

    /* Not PEM at all. */
    snprintf(path, sizeof path, "%s/junk.pem", files.dir);
    FILE *f = fopen(path, "w");
    REQUIRE(f != NULL);
    fputs("this is not a certificate\n", f);
    fclose(f);
    CHECK(fr_tls_ctx_new(path, files.key, alpn, alen, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "cannot load the certificate");
    CHECK(fr_tls_ctx_new(files.cert, path, alpn, alen, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "cannot load the key");

    /* Another pair's key does not match this certificate. */
    snprintf(other_cert, sizeof other_cert, "%s/other-cert.pem", files.dir);
    snprintf(other_key, sizeof other_key, "%s/other-key.pem", files.dir);
    REQUIRE(tls_fx_write_pair(other_cert, other_key, "other") == 0);
    CHECK(fr_tls_ctx_new(files.cert, other_key, alpn, alen, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "does not match");

    /* A key under a passphrase is refused, not prompted for. */
    snprintf(locked, sizeof locked, "%s/locked.pem", files.dir);
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    f = fopen(locked, "w");
    REQUIRE(f != NULL && pkey != NULL);
    PEM_write_PrivateKey(f, pkey, EVP_aes_128_cbc(), (unsigned char *)"secret", 6, NULL, NULL);
    fclose(f);
    EVP_PKEY_free(pkey);
    CHECK(fr_tls_ctx_new(other_cert, locked, alpn, alen, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "cannot load the key");
}

/* Connections keep the context they were opened with: freed by its owner (a reload), it lives
 * on until they close, and the ALPN choice still reads its list. */
static void test_ctx_outlived(void) {
    fr_tls_ctx_t *ctx = ctx_new();
    REQUIRE(ctx != NULL);
    pair_t p;
    REQUIRE(pair_open(&p, ctx, (const unsigned char *)"\x08http/1.1", 9) == 0);
    fr_tls_ctx_free(ctx);
    pump(&p, 0);
    CHECK(p.srv.ready);
    unsigned len;
    const unsigned char *name = fr_tls_alpn(&p.srv, &len);
    CHECK_MEM(name, len, "http/1.1", 8);
    pair_close(&p);
}

/* ---- the switch to the record layer of our own (codec/tls_records.h) ----------------------- */

/* Each TLS 1.3 suite: after the handshake the server has switched, and records go both ways:
 * a request fed one byte per read, one padded by the client, 100 KB written at once. */
static void test_switch_each_suite(void) {
    fr_tls_ctx_t *ctx = ctx_new();
    REQUIRE(ctx != NULL);
    static const char *const suites[] = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                         "TLS_CHACHA20_POLY1305_SHA256"};
    static const char req[] = "GET /sub/a HTTP/1.1\r\nHost: x\r\n\r\n";
    for (size_t i = 0; i < 3; i++) {
        pair_t p;
        REQUIRE(pair_open(&p, ctx, (const unsigned char *)"\x02h2\x08http/1.1", 12) == 0);
        REQUIRE(SSL_set_ciphersuites(p.cli.ssl, suites[i]) == 1);
        pump(&p, 0);
        REQUIRE(p.srv.ready);
        CHECK(switched(&p));
        CHECK_EQ_STR(fr_tls_cipher(&p.srv), suites[i]);
        CHECK_EQ_STR(fr_tls_version(&p.srv), "TLSv1.3");
        unsigned len;
        const unsigned char *name = fr_tls_alpn(&p.srv, &len);
        CHECK_MEM(name, len, "http/1.1", 8);
        check_upstream(&p, req, sizeof req - 1, 1);
        check_downstream(&p, 100 * 1024, (unsigned)i);
        SSL_set_block_padding(p.cli.ssl, 512);
        check_upstream(&p, req, sizeof req - 1, 0);
        check_upstream(&p, "x", 1, 0);
        check_downstream(&p, 1, 7);
        pair_close(&p);
    }
    fr_tls_ctx_free(ctx);
}

/* The client updates its keys and asks for ours: the server answers with its own KeyUpdate and
 * both ways keep working, twice over. */
static void test_switch_key_update(void) {
    fr_tls_ctx_t *ctx = ctx_new();
    REQUIRE(ctx != NULL);
    pair_t p;
    REQUIRE(pair_up(&p, ctx) == 0 && switched(&p));
    for (int round = 0; round < 2; round++) {
        REQUIRE(SSL_key_update(p.cli.ssl, SSL_KEY_UPDATE_REQUESTED) == 1);
        check_upstream(&p, "after the update", 16, round ? 3 : 0);
        check_downstream(&p, 20000, 3);
        /* Not asked this time: the client changes its sending keys alone. */
        REQUIRE(SSL_key_update(p.cli.ssl, SSL_KEY_UPDATE_NOT_REQUESTED) == 1);
        check_upstream(&p, "again", 5, 0);
        check_downstream(&p, 10, 4);
    }
    pair_close(&p);
    fr_tls_ctx_free(ctx);
}

/* What a switched session refuses, and why it says it did. */
static void test_switch_failures(void) {
    fr_tls_ctx_t *ctx = ctx_new();
    REQUIRE(ctx != NULL);
    pair_t p;
    REQUIRE(pair_up(&p, ctx) == 0 && switched(&p));
    size_t w, n;
    REQUIRE(SSL_write_ex(p.cli.ssl, "hello", 5, &w) == 1);
    char *bytes = tls_fx_client_output(&p.cli, &n);
    REQUIRE(bytes != NULL && n == 5 + 5 + 1 + 16);
    bytes[7] ^= 0x40; /* a ciphertext byte */
    server_feed(&p, bytes, n, 0);
    free(bytes);
    CHECK_EQ_INT(p.last, FR_TLS_ERROR);
    CHECK_EQ_STR(fr_tls_why(), "bad record mac");
    CHECK_EQ_UINT(p.got.len, 0);
    /* A bad_record_mac alert went out, which the client reads as such. */
    tls_fx_client_input(&p.cli, p.out.p, p.out.len);
    fr_buf_t read = {0};
    CHECK_EQ_INT(client_read(&p, &read), SSL_ERROR_SSL);
    CHECK_CONTAINS(ERR_reason_error_string(ERR_peek_last_error()), "bad record mac");
    ERR_clear_error();
    pair_close(&p);

    /* A ChangeCipherSpec after the handshake, and a record longer than TLS allows. */
    static const char *const bad[] = {"\x14\x03\x03\x00\x01\x01", "\x17\x03\x03\x41\x01"};
    static const char *const why[] = {"change cipher spec after the handshake",
                                      "record overflow"};
    for (int i = 0; i < 2; i++) {
        REQUIRE(pair_up(&p, ctx) == 0 && switched(&p));
        server_feed(&p, bad[i], i ? 5 : 6, 0);
        CHECK_EQ_INT(p.last, FR_TLS_ERROR);
        CHECK_EQ_STR(fr_tls_why(), why[i]);
        pair_close(&p);
    }

    /* close_notify, then nothing more: FR_TLS_CLOSED again. */
    REQUIRE(pair_up(&p, ctx) == 0 && switched(&p));
    SSL_shutdown(p.cli.ssl);
    pump(&p, 0);
    CHECK_EQ_INT(p.last, FR_TLS_CLOSED);
    const char *in = "";
    n = 0;
    CHECK_EQ_INT(fr_tls_read(&p.srv, &in, &n, p.plain, sizeof p.plain, &p.out), FR_TLS_CLOSED);
    pair_close(&p);
    fr_tls_ctx_free(ctx);
}

/* A HelloRetryRequest (the client's key share is for a group the server does not take) adds
 * a round trip and a second ClientHello to the handshake: the counts still start at Finished. */
static void test_switch_after_hello_retry(void) {
    fr_tls_ctx_t *ctx = ctx_new();
    REQUIRE(ctx != NULL);
    REQUIRE(SSL_CTX_set1_groups_list(ctx, "P-256") == 1);
    pair_t p;
    REQUIRE(pair_open(&p, ctx, NULL, 0) == 0);
    REQUIRE(SSL_set1_groups_list(p.cli.ssl, "X25519:P-256") == 1);
    pump(&p, 0);
    REQUIRE(p.srv.ready);
    /* The client's first share was X25519: P-256 means the retry happened. */
    CHECK_EQ_INT(SSL_get_negotiated_group(p.cli.ssl), NID_X9_62_prime256v1);
    CHECK(switched(&p));
    check_upstream(&p, "GET / HTTP/1.1\r\n\r\n", 18, 0);
    check_downstream(&p, 20000, 9);
    pair_close(&p);
    fr_tls_ctx_free(ctx);
}

/* The client's Finished, a request and a KeyUpdate in one flight, in the first or second
 * position: the request is read; the server answers before it is idle (through OpenSSL, whose
 * records must then be counted); a KeyUpdate seen by OpenSSL keeps the session there. */
static void test_switch_pipelined(void) {
    fr_tls_ctx_t *ctx = ctx_new();
    REQUIRE(ctx != NULL);
    static const char req[] = "GET /sub/a HTTP/1.1\r\n\r\n";
    for (int key_update = 0; key_update < 2; key_update++) {
        pair_t p;
        REQUIRE(pair_open(&p, ctx, NULL, 0) == 0);
        /* ClientHello → the server's flight → the client's Finished, not yet delivered. */
        size_t n, w;
        (void)SSL_do_handshake(p.cli.ssl);
        char *bytes = tls_fx_client_output(&p.cli, &n);
        server_feed(&p, bytes, n, 0);
        free(bytes);
        tls_fx_client_input(&p.cli, p.out.p, p.out.len);
        p.out.len = 0;
        REQUIRE(SSL_do_handshake(p.cli.ssl) == 1);
        if (key_update)
            REQUIRE(SSL_key_update(p.cli.ssl, SSL_KEY_UPDATE_NOT_REQUESTED) == 1);
        REQUIRE(SSL_write_ex(p.cli.ssl, req, sizeof req - 1, &w) == 1);
        bytes = tls_fx_client_output(&p.cli, &n);
        const char *in = bytes;
        ssize_t got = fr_tls_read(&p.srv, &in, &n, p.plain, sizeof p.plain, &p.out);
        CHECK(p.srv.ready);
        CHECK_MEM(p.plain, got > 0 ? (size_t)got : 0, req, sizeof req - 1);
        CHECK(p.srv.ssl != NULL); /* not idle yet: the request was just read */
        /* The answer's head goes out through OpenSSL, then the session is idle. */
        uv_buf_t b = uv_buf_init((char *)"HTTP/1.1 200 OK\r\n\r\n", 19);
        CHECK_EQ_INT(fr_tls_write_bufs(&p.srv, &b, 1, &p.out), 0);
        CHECK_EQ_INT(fr_tls_read(&p.srv, &in, &n, p.plain, sizeof p.plain, &p.out), FR_TLS_AGAIN);
        free(bytes);
        CHECK(key_update ? p.srv.ssl != NULL : switched(&p));
        tls_fx_client_input(&p.cli, p.out.p, p.out.len);
        p.out.len = 0;
        fr_buf_t read = {0};
        client_read(&p, &read);
        CHECK_MEM(read.p, read.len, "HTTP/1.1 200 OK\r\n\r\n", 19);
        fr_buf_free(&read);
        check_downstream(&p, 5000, 2);
        check_upstream(&p, req, sizeof req - 1, 0);
        pair_close(&p);
    }
    fr_tls_ctx_free(ctx);
}

/* A client resumes with the ticket one worker's context gave it on another worker's context. */
static void test_resume_across_contexts(void) {
    fr_tls_ctx_t *a = ctx_new(), *b = ctx_new();
    REQUIRE(a != NULL && b != NULL);
    pair_t p;
    REQUIRE(pair_open(&p, a, NULL, 0) == 0);
    pump(&p, 0);
    REQUIRE(p.srv.ready);
    CHECK(switched(&p)); /* the ticket was written before the SSL went */
    fr_buf_t read = {0};
    client_read(&p, &read); /* takes the ticket the server sent after the handshake */
    fr_buf_free(&read);
    SSL_SESSION *sess = SSL_get1_session(p.cli.ssl);
    REQUIRE(sess != NULL);
    CHECK(SSL_SESSION_is_resumable(sess));
    SSL_shutdown(p.cli.ssl); /* freed without it, the client would mark its session spoiled */
    pair_close(&p);

    REQUIRE(pair_open(&p, b, NULL, 0) == 0);
    SSL_set_session(p.cli.ssl, sess);
    pump(&p, 0);
    CHECK(p.srv.ready);
    /* The server side may have left OpenSSL by now (codec/tls_records.h): the client says. */
    CHECK_EQ_INT(SSL_session_reused(p.cli.ssl), 1);
    CHECK(switched(&p));
    check_upstream(&p, "resumed", 7, 0);
    check_downstream(&p, 300, 5);
    pair_close(&p);
    SSL_SESSION_free(sess);
    fr_tls_ctx_free(a);
    fr_tls_ctx_free(b);
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    if (tls_fx_files_make(&files) != 0) {
        printf("cannot make a certificate in a temp dir\n");
        return 1;
    }
    FR_RUN(test_handshake_and_alpn);
    FR_RUN(test_tls12);
    FR_RUN(test_records_both_ways);
    FR_RUN(test_input_cut_anywhere);
    FR_RUN(test_garbage_and_alerts);
    FR_RUN(test_close_notify);
    FR_RUN(test_ctx_errors);
    FR_RUN(test_ctx_outlived);
    FR_RUN(test_switch_each_suite);
    FR_RUN(test_switch_key_update);
    FR_RUN(test_switch_failures);
    FR_RUN(test_switch_pipelined);
    FR_RUN(test_switch_after_hello_retry);
    FR_RUN(test_resume_across_contexts);
    static const char *const more[] = {"missing.pem", "junk.pem", "other-cert.pem",
                                       "other-key.pem", "locked.pem"};
    tls_fx_files_remove(&files, more, sizeof more / sizeof more[0]);
    return FR_TEST_END();
}
