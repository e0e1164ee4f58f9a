/* Fuzz target: the client side of TLS under the bytes (codec/tls_mem.c driven as
 * client/http_client.c drives it, with client/https.c's contexts and sessions): what a backend
 * sends goes through fr_tls_read. A certificate for localhost is made at init (tls_fixture.h);
 * the client trusts it as its CA file and checks the name. Every input gets new sessions.
 *
 * Input: [mode][bytes…]
 *   mode bit 0 = 0, raw: the client sends its ClientHello, and the bytes are what the server
 *     answered, cut into reads whose lengths come from the input (mode bit 1: verification
 *     off). Checked: results are in range, every read uses all its bytes or fails, no
 *     plaintext comes out of a handshake that did not finish (it cannot: the input knows no
 *     key), errors are final and fr_https_why names them.
 *   mode bit 0 = 1, session: the server side of the engine (http/tls.h's context) completes a
 *     handshake with the client, each side's flights cut into reads of a length the next byte
 *     chooses, the certificate checked; then [op][length: 2 bytes][bytes]:
 *       0 the server sends bytes: the client reads exactly them, in order
 *       1 the server sends bytes and one byte of the records is flipped: the client returns
 *         at most a prefix of what was sent, then fails (or waits for a record that will not
 *         come)
 *       2 the client sends bytes: the server reads exactly them
 *       3 the server sends close_notify: the client reads FR_TLS_CLOSED
 * FR_FUZZ_SHOW=1 prints what a session did. */
#include <stdint.h>
#include <string.h>

#include "client/https.h"
#include "fuzz_common.h"
#include "fuzz_tls_side.h"
#include "http/tls.h"
#include "../unit/tls_fixture.h"

static fr_tls_ctx_t *server_ctx, *client_ctx;
static fr_https_t *https;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    tls_fx_files_t files;
    snprintf(files.dir, sizeof files.dir, "/tmp/frtlscXXXXXX");
    if (!mkdtemp(files.dir))
        fz_fail("cannot make a temp dir");
    snprintf(files.cert, sizeof files.cert, "%s/cert.pem", files.dir);
    snprintf(files.key, sizeof files.key, "%s/key.pem", files.dir);
    if (tls_fx_write_pair_alt(files.cert, files.key, "localhost", "DNS:localhost") != 0)
        fz_fail("cannot make a certificate");
    static const unsigned char alpn[] = "\x08http/1.1";
    char err[512];
    server_ctx = fr_tls_ctx_new(files.cert, files.key, alpn, sizeof alpn - 1, err, sizeof err);
    if (!server_ctx)
        fz_fail("fr_tls_ctx_new: %s", err);
    https = fr_https_new();
    client_ctx = fr_https_ctx(https, files.cert, err, sizeof err);
    if (!client_ctx)
        fz_fail("fr_https_ctx: %s", err);
    tls_fx_files_remove(&files, NULL, 0);
    return 0;
}

/* Every failed read of the client is named as a script would see it. */
static void check_why(fr_tls_t *t) {
    char why[200];
    fr_https_why(t, why, sizeof why);
    fz_expect(!strncmp(why, "certificate verify failed: ", 27) ||
                  !strncmp(why, "tls handshake failed: ", 22),
              "fr_https_why said %s", why);
}

/* Gives `to` what `from` wrote, in reads the input cuts. */
static void pass(fz_side_t *from, fz_side_t *to, fz_reader_t *r) {
    fr_buf_t bytes = from->out;
    memset(&from->out, 0, sizeof from->out);
    fz_side_feed(to, r, bytes.p, bytes.len);
    fr_buf_free(&bytes);
}

static void run_raw(fz_reader_t *r, int verify) {
    fz_side_t c;
    memset(&c, 0, sizeof c);
    c.on_error = check_why;
    if (fr_https_open(&c.tls, https, client_ctx, "localhost", verify, NULL) < 0)
        fz_fail("fr_https_open");
    fz_side_read(&c, "", 0);
    fz_expect(c.out.len > 0 && c.last == FR_TLS_AGAIN, "no ClientHello");
    while (fz_left(r) > 0 && !c.dead) {
        size_t want = (size_t)fz_u8(r) * 16 + 1, got;
        const uint8_t *p = fz_take(r, want, &got);
        fz_side_read(&c, (const char *)p, got);
    }
    fz_expect(!c.tls.ready && c.got.len == 0, "a handshake finished with a server that knows no key");
    fz_side_check_final(&c);
    fz_side_free(&c);
}

static void run_session(fz_reader_t *r) {
    fz_side_t c, s;
    memset(&c, 0, sizeof c);
    memset(&s, 0, sizeof s);
    c.on_error = check_why;
    if (fr_https_open(&c.tls, https, client_ctx, "localhost", 1, NULL) < 0 || fr_tls_open(&s.tls, server_ctx) < 0)
        fz_fail("cannot open the sessions");
    fz_side_read(&c, "", 0);
    for (int round = 0; round < 20 && !c.dead && !s.dead && !(c.tls.ready && s.tls.ready);
         round++) {
        pass(&c, &s, r);
        pass(&s, &c, r);
    }
    int up = c.tls.ready && s.tls.ready && !c.dead && !s.dead;
    fz_expect(up, "the handshake with a trusted server did not finish");
    unsigned len;
    const unsigned char *name = fr_tls_alpn(&c.tls, &len);
    fz_expect(name && len == 8 && !memcmp(name, "http/1.1", 8), "ALPN did not agree on http/1.1");
    while (!c.dead && !s.dead && fz_left(r) > 0) {
        uint8_t op = fz_u8(r) % 4;
        size_t n = (size_t)fz_u8(r) * 64 + fz_u8(r), got;
        const uint8_t *p = fz_take(r, n, &got);
        if (getenv("FR_FUZZ_SHOW"))
            fprintf(stderr, "op %u, %zu bytes\n", op, got);
        struct iovec v = {(void *)p, got};
        if (op == 0 || op == 1) {
            if (got == 0)
                continue;
            size_t mark = c.got.len;
            fz_expect(fr_tls_write(&s.tls, &v, 1, &s.out) == 0, "the server could not write");
            if (op == 1 && s.out.len)
                s.out.p[fz_u8(r) % s.out.len] ^= (char)(1u << (fz_u8(r) % 8));
            pass(&s, &c, r);
            size_t read = c.got.len - mark;
            if (op == 0) {
                fz_expect(!c.dead && read == got && !memcmp(c.got.p + mark, p, got),
                          "the client read %zu bytes of %zu sent (last %zd)", read, got, c.last);
            } else {
                fz_expect(read <= got && (read == 0 || !memcmp(c.got.p + mark, p, read)),
                          "a changed record gave plaintext that was not sent");
                break;
            }
        } else if (op == 2) {
            size_t mark = s.got.len;
            fz_expect(fr_tls_write(&c.tls, &v, 1, &c.out) == 0, "the client could not write");
            pass(&c, &s, r);
            fz_expect(s.got.len - mark == got && (got == 0 || !memcmp(s.got.p + mark, p, got)),
                      "the server read %zu bytes of %zu", s.got.len - mark, got);
        } else {
            fr_tls_shutdown(&s.tls, &s.out);
            pass(&s, &c, r);
            fz_expect(c.last == FR_TLS_CLOSED, "close_notify read as %zd", c.last);
            break;
        }
    }
    fz_side_check_final(&c);
    fz_side_free(&c);
    fz_side_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_reader_t r = {data, size, 0};
    uint8_t mode = fz_u8(&r);
    if (mode & 1)
        run_session(&r);
    else
        run_raw(&r, !(mode & 2));
    return 0;
}
