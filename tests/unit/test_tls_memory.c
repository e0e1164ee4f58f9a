/* What an idle TLS connection keeps in OpenSSL: 200 server connections (src/http/tls.c) each do
 * a handshake, read a request and write a stream's first bytes, and the test counts what
 * OpenSSL still holds for them, by allocation site, through CRYPTO_set_mem_functions (set before
 * OpenSSL allocates anything). Twice: with the SSL kept (the record buffers must be gone,
 * SSL_MODE_RELEASE_BUFFERS, and the total stays under a bound), and as the server runs, where
 * every idle TLS 1.3 connection has left OpenSSL for codec/tls_records.h (under 4 KB with the
 * layer's own structure). The figures are printed for docs/BENCHMARKS.md.
 *
 *   build/tests/unit/test_tls_memory          per-connection bytes and the largest sites */
#include <string.h>

#include <openssl/crypto.h>

#include "codec/tls_records.h"
#include "fr_test.h"
#include "http/tls.h"
#include "tls_fixture.h"

#define NCONN 200

/* Each block carries its size and its site (0: not counted) in a 16-byte header. */
typedef struct {
    const char *file;
    int line;
    size_t bytes, n;
} site_t;

static site_t sites[256];
static size_t nsites, live_bytes, live_n;
static int counting;

static size_t site_of(const char *file, int line) {
    for (size_t i = 0; i < nsites; i++)
        if (sites[i].line == line && strcmp(sites[i].file, file) == 0)
            return i + 1;
    if (nsites == sizeof sites / sizeof sites[0])
        return 0;
    sites[nsites].file = file;
    sites[nsites].line = line;
    return ++nsites;
}

static void count(size_t *h, size_t n, const char *file, int line) {
    h[0] = n;
    h[1] = counting ? site_of(file, line) : 0;
    if (h[1]) {
        live_bytes += n;
        live_n++;
        sites[h[1] - 1].bytes += n;
        sites[h[1] - 1].n++;
    }
}

static void uncount(const size_t *h) {
    if (h[1]) {
        live_bytes -= h[0];
        live_n--;
        sites[h[1] - 1].bytes -= h[0];
        sites[h[1] - 1].n--;
    }
}

static void *m_alloc(size_t n, const char *file, int line) {
    size_t *h = malloc(n + 16);
    if (!h)
        return NULL;
    count(h, n, file, line);
    return h + 2;
}

static void *m_realloc(void *p, size_t n, const char *file, int line) {
    if (!p)
        return m_alloc(n, file, line);
    size_t *h = (size_t *)p - 2;
    uncount(h);
    h = realloc(h, n + 16);
    if (!h)
        return NULL;
    count(h, n, file, line);
    return h + 2;
}

static void m_free(void *p, const char *file, int line) {
    (void)file;
    (void)line;
    if (!p)
        return;
    size_t *h = (size_t *)p - 2;
    uncount(h);
    free(h);
}

static int by_bytes(const void *a, const void *b) {
    const site_t *x = a, *y = b;
    return x->bytes < y->bytes ? 1 : x->bytes > y->bytes ? -1 : 0;
}

/* Opens NCONN server connections on ctx, each with a handshake, a request read and a stream's
 * head written, and returns what OpenSSL still holds for them, per connection (sites[] has the
 * detail). Sets *switched to how many left OpenSSL (codec/tls_records.h). */
static double idle_bytes(fr_tls_ctx_t *ctx, fr_tls_t *srv, int *switched) {
    static const unsigned char alpn[] = "\x08http/1.1";
    static char plain[FR_TLS_RECORD];
    fr_buf_t out = {0};
    int ready = 0;
    memset(sites, 0, sizeof sites);
    nsites = live_bytes = live_n = 0;
    *switched = 0;
    for (int i = 0; i < NCONN; i++) {
        tls_fx_client_t c;
        if (tls_fx_client_new(&c, alpn, sizeof alpn - 1) != 0)
            return -1;
        counting = 1;
        int opened = fr_tls_open(&srv[i], ctx);
        counting = 0;
        if (opened != 0)
            return -1;
        /* The handshake, then a request in and a stream's head out. */
        for (int round = 0; round < 10; round++) {
            if (!SSL_is_init_finished(c.ssl))
                SSL_do_handshake(c.ssl);
            if (srv[i].ready && round > 2) {
                size_t w;
                SSL_write_ex(c.ssl, "GET /sub/a HTTP/1.1\r\n\r\n", 23, &w);
            }
            size_t n;
            char *bytes = tls_fx_client_output(&c, &n);
            const char *in = bytes;
            counting = 1;
            while (bytes && fr_tls_read(&srv[i], &in, &n, plain, sizeof plain, &out) > 0) {
            }
            counting = 0;
            free(bytes);
            tls_fx_client_input(&c, out.p, out.len);
            out.len = 0;
        }
        static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                   "Transfer-Encoding: chunked\r\n\r\nf\r\nretry: 3000\n\n\r\n";
        uv_buf_t b = uv_buf_init((char *)head, sizeof head - 1);
        counting = 1;
        if (srv[i].ready && fr_tls_write_bufs(&srv[i], &b, 1, &out) == 0)
            ready++;
        counting = 0;
        /* The client must read what the server wrote last: the records stay in step. */
        tls_fx_client_input(&c, out.p, out.len);
        out.len = 0;
        char got[256];
        size_t n = 0;
        if (SSL_read_ex(c.ssl, got, sizeof got, &n) != 1 || n != sizeof head - 1)
            ready--;
        *switched += srv[i].ssl == NULL && srv[i].rec != NULL;
        SSL_shutdown(c.ssl);
        tls_fx_client_free(&c);
    }
    fr_buf_free(&out);
    return ready == NCONN ? (double)live_bytes / NCONN : -1;
}

static void print_sites(void) {
    qsort(sites, nsites, sizeof sites[0], by_bytes);
    for (size_t i = 0; i < nsites && i < 8 && sites[i].bytes >= NCONN; i++)
        printf("      %6.0f B in %4.1f allocations  %s:%d\n", (double)sites[i].bytes / NCONN,
               (double)sites[i].n / NCONN, sites[i].file, sites[i].line);
}

static void close_all(fr_tls_t *srv) {
    for (int i = 0; i < NCONN; i++)
        fr_tls_close(&srv[i]);
}

static void test_idle_connections(void) {
    tls_fx_files_t files;
    REQUIRE(tls_fx_files_make(&files) == 0);
    static const unsigned char alpn[] = "\x08http/1.1";
    char err[512];
    fr_tls_ctx_t *ctx = fr_tls_ctx_new(files.cert, files.key, alpn, sizeof alpn - 1, err, sizeof err);
    REQUIRE(ctx != NULL);
    static fr_tls_t srv[NCONN];
    int switched;

    /* The SSL kept (a context without the key log the switch needs): OpenSSL's own figure. */
    SSL_CTX_keylog_cb_func keylog = SSL_CTX_get_keylog_callback(ctx);
    SSL_CTX_set_keylog_callback(ctx, NULL);
    double kept = idle_bytes(ctx, srv, &switched);
    CHECK(kept > 0);
    CHECK_EQ_INT(switched, 0);
    printf("    SSL kept: OpenSSL holds %.0f bytes in %.1f allocations per idle server "
           "connection (TLS 1.3, P-256 certificate); the largest:\n",
           kept, (double)live_n / NCONN);
    print_sites();
    /* No record buffer (about 17 KB each) is kept by an idle connection. */
    for (size_t i = 0; i < nsites; i++)
        CHECK(sites[i].bytes / NCONN < 8192 || sites[i].n == 0);
    /* OpenSSL 3.0.x: about 13.9 KB (its SSL object alone is 7.6 KB). A bound, not a goal: a
     * buffer kept by mistake would show here. */
    CHECK(kept < 16 * 1024);
    close_all(srv);

    /* As the server runs: every connection switched to the record layer of our own. */
    SSL_CTX_set_keylog_callback(ctx, keylog);
    double own = idle_bytes(ctx, srv, &switched);
    CHECK(own > 0);
    CHECK_EQ_INT(switched, NCONN);
    printf("    Switched (codec/tls_records.h): OpenSSL holds %.0f bytes in %.1f allocations "
           "per idle server connection, plus the record layer's own structure of %zu bytes "
           "(%.0f bytes in all); the largest:\n",
           own, (double)live_n / NCONN, fr_tls_rec_size(), own + (double)fr_tls_rec_size());
    print_sites();
    /* Two keyed AEAD contexts and little else: about 2.4 KB with AES-GCM. */
    CHECK(own + (double)fr_tls_rec_size() < 4096);
    close_all(srv);
    fr_tls_ctx_free(ctx);
    tls_fx_files_remove(&files, NULL, 0);
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    if (!CRYPTO_set_mem_functions(m_alloc, m_realloc, m_free)) {
        printf("OpenSSL allocated before main: cannot count its memory\n");
        return 1;
    }
    FR_RUN(test_idle_connections);
    return FR_TEST_END();
}
