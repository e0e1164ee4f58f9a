/* Fuzz target: TLS under the bytes (src/http/tls.c), the server side, as http/conn.c drives it:
 * bytes from a client go through fr_tls_read (the handshake first, then records), and what the
 * server writes goes through fr_tls_write. A self-signed certificate is made at init (with
 * OpenSSL's API, tests/unit/tls_fixture.h) and loaded once; every input gets new connections.
 *
 * Input: [mode][bytes…]
 *   mode bit 0 = 0, raw: the bytes are what a client sent, cut into reads whose lengths come
 *     from the input (a ClientHello, or anything else). Checked: results are in range, every
 *     read uses all its bytes or fails, errors are final (reads keep failing, writes refuse,
 *     shutdown writes nothing), no plaintext comes out of a handshake that did not finish.
 *   mode bit 0 = 1, session: an OpenSSL client (its ALPN offer from bits 1-2) completes a
 *     handshake with the server through the layer, its bytes cut into reads of a length the
 *     next byte chooses; then the input is a list of operations, [op][length: 2 bytes][bytes]
 *     and a byte for the length of the server's reads where the server reads:
 *       0 the client sends bytes: the server reads exactly them, in order
 *       1 the server sends bytes in several buffers: the client reads exactly them
 *       2 the client sends bytes and one byte of the records is flipped: the server returns
 *         at most a prefix of what was sent, then fails (or waits for a record that will not
 *         come)
 *       3 bytes from the input go straight to the server as if from the client: nothing comes
 *         out that the client did not send
 *       4 the client sends close_notify: the server reads FR_TLS_CLOSED
 *       5 the server sends close_notify: the client reads a clean end
 *     after an error or a close the session ends and no call may succeed.
 * FR_FUZZ_SHOW=1 prints what a session did. */
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "fuzz_tls_side.h"
#include "http/tls.h"
#include "../unit/tls_fixture.h"

static fr_tls_ctx_t *ctx;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    tls_fx_files_t files;
    if (tls_fx_files_make(&files) != 0)
        fz_fail("cannot make a certificate in a temp dir");
    static const unsigned char alpn[] = "\x02h2\x08http/1.1";
    char err[512];
    ctx = fr_tls_ctx_new(files.cert, files.key, alpn, sizeof alpn - 1, err, sizeof err);
    tls_fx_files_remove(&files, NULL, 0);
    if (!ctx)
        fz_fail("fr_tls_ctx_new: %s", err);
    return 0;
}

static void run_raw(fz_reader_t *r) {
    fz_side_t s;
    memset(&s, 0, sizeof s);
    if (fr_tls_open(&s.tls, ctx) < 0)
        fz_fail("fr_tls_open");
    while (fz_left(r) > 0 && !s.dead) {
        size_t want = (size_t)fz_u8(r) * 16 + 1, got;
        const uint8_t *p = fz_take(r, want, &got);
        fz_side_read(&s, (const char *)p, got);
    }
    fz_expect(s.tls.ready || s.got.len == 0, "plaintext without a handshake");
    fz_side_check_final(&s);
    fz_side_free(&s);
}

/* Gives the client what the server wrote. */
static void to_client(fz_side_t *s, tls_fx_client_t *c) {
    tls_fx_client_input(c, s->out.p, s->out.len);
    s->out.len = 0;
}

/* Everything the client can read now, appended to b; SSL_get_error of the last read. */
static int client_read(tls_fx_client_t *c, fr_buf_t *b) {
    char buf[4096];
    size_t n;
    int rc;
    while ((rc = SSL_read_ex(c->ssl, buf, sizeof buf, &n)) == 1)
        fr_buf_put(b, buf, n);
    return SSL_get_error(c->ssl, rc);
}

/* Runs the handshake; the client's flights reach the server in reads of one length, the
 * input's next byte (so the operations after it start at a known place). */
static int handshake(fz_side_t *s, tls_fx_client_t *c, fz_reader_t *r) {
    fz_reader_t step = {r->p + r->pos, fz_left(r) ? 1 : 0, 0};
    r->pos += step.len;
    for (int round = 0; round < 20 && !s->dead; round++) {
        int done = SSL_do_handshake(c->ssl) == 1;
        size_t n;
        char *bytes = tls_fx_client_output(c, &n);
        step.pos = 0;
        if (bytes)
            fz_side_feed(s, &step, bytes, n);
        free(bytes);
        to_client(s, c);
        if (done && s->tls.ready)
            return 1;
    }
    return 0;
}

static void run_session(fz_reader_t *r, uint8_t mode) {
    static const struct {
        const char *wire;
        unsigned len;
    } offers[] = {{NULL, 0}, {"\x08http/1.1", 9}, {"\x02h2\x08http/1.1", 12}, {"\x02h2", 3}};
    unsigned which = (mode >> 1) & 3;
    tls_fx_client_t c;
    if (tls_fx_client_new(&c, (const unsigned char *)offers[which].wire, offers[which].len) != 0)
        fz_fail("tls_fx_client_new");
    fz_side_t s;
    memset(&s, 0, sizeof s);
    if (fr_tls_open(&s.tls, ctx) < 0)
        fz_fail("fr_tls_open");
    int up = handshake(&s, &c, r);
    if (getenv("FR_FUZZ_SHOW"))
        fprintf(stderr, "session: offer %u, handshake %s\n", which, up ? "done" : "not done");
    if (up) {
        /* The server offers h2, then http/1.1: its first protocol the client also offers. */
        static const char *const want[] = {NULL, "http/1.1", "h2", "h2"};
        unsigned len;
        const unsigned char *name = fr_tls_alpn(&s.tls, &len);
        if (!want[which])
            fz_expect(name == NULL, "ALPN chosen without an offer");
        else
            fz_expect(name && len == strlen(want[which]) && memcmp(name, want[which], len) == 0,
                      "ALPN chose %.*s, not %s", (int)len, name ? (const char *)name : "",
                      want[which]);
    }
    while (up && !s.dead && fz_left(r) > 0) {
        uint8_t op = fz_u8(r) % 6;
        size_t len = (size_t)fz_u8(r) * 64 + fz_u8(r), got;
        const uint8_t *p = fz_take(r, len, &got);
        if (getenv("FR_FUZZ_SHOW"))
            fprintf(stderr, "op %u, %zu bytes\n", op, got);
        size_t wrote;
        if (op == 0 || op == 2) {
            if (got == 0)
                continue;
            size_t mark = s.got.len;
            if (SSL_write_ex(c.ssl, p, got, &wrote) != 1)
                fz_fail("the client could not write");
            size_t n;
            char *bytes = tls_fx_client_output(&c, &n);
            if (op == 2 && bytes && n)
                bytes[fz_u8(r) % n] ^= (char)(1u << (fz_u8(r) % 8));
            fz_side_feed(&s, r, bytes, n);
            free(bytes);
            size_t read = s.got.len - mark;
            if (op == 0) {
                fz_expect(!s.dead && read == got && memcmp(s.got.p + mark, p, got) == 0,
                          "the server read %zu bytes of %zu sent (last %zd)", read, got, s.last);
            } else {
                fz_expect(read <= got && (read == 0 || memcmp(s.got.p + mark, p, read) == 0),
                          "a changed record gave plaintext that was not sent");
                /* A changed length may leave the server waiting; the session is over. */
                break;
            }
        } else if (op == 1) {
            /* Cut into up to 8 buffers of one length (the next byte), the last takes the rest. */
            uv_buf_t bufs[8];
            size_t nb = 0, off = 0, piece = (size_t)fz_u8(r) + 1;
            while (off < got) {
                size_t k = piece < got - off && nb < 7 ? piece : got - off;
                bufs[nb++] = uv_buf_init((char *)p + off, (unsigned)k);
                off += k;
            }
            fz_expect(fr_tls_write_bufs(&s.tls, bufs, nb, &s.out) == 0, "the server could not write");
            to_client(&s, &c);
            fr_buf_t read = {0};
            int e = client_read(&c, &read);
            fz_expect(e == SSL_ERROR_WANT_READ, "the client's read failed (%d)", e);
            fz_expect(read.len == got && (got == 0 || memcmp(read.p, p, got) == 0),
                      "the client read %zu bytes of %zu written", read.len, got);
            fr_buf_free(&read);
        } else if (op == 3) {
            size_t mark = s.got.len;
            fz_side_feed(&s, r, (const char *)p, got);
            fz_expect(s.got.len == mark, "bytes injected into the session came out as plaintext");
            break; /* the stream of records is broken from here */
        } else if (op == 4) {
            SSL_shutdown(c.ssl);
            size_t n;
            char *bytes = tls_fx_client_output(&c, &n);
            fz_side_feed(&s, r, bytes, n);
            free(bytes);
            fz_expect(s.last == FR_TLS_CLOSED, "close_notify read as %zd", s.last);
        } else {
            fr_tls_shutdown(&s.tls, &s.out);
            to_client(&s, &c);
            fr_buf_t read = {0};
            fz_expect(client_read(&c, &read) == SSL_ERROR_ZERO_RETURN,
                      "the client did not see the server's close_notify");
            fr_buf_free(&read);
            break;
        }
    }
    fz_side_check_final(&s);
    fz_side_free(&s);
    tls_fx_client_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_reader_t r = {data, size, 0};
    uint8_t mode = fz_u8(&r);
    if (mode & 1)
        run_session(&r, mode);
    else
        run_raw(&r);
    ERR_clear_error();
    return 0;
}
