/* A TLS session over bytes in memory; see tls_mem.h.
 *
 * Each session's SSL reads and writes through one BIO of our own ("freshet connection") that
 * keeps nothing: during a call, BIO data points at an io_t on the caller's stack, so a read is
 * served from the caller's ciphertext and a write is appended to the caller's `out`. Outside a
 * call the BIO has no buffer and no pointer, so nothing of one session can reach another's (a
 * worker serves many on one thread, one call at a time). */
#include "codec/tls_mem.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

/* What a BIO call sees: the ciphertext left to read, and where written ciphertext goes. */
typedef struct {
    const char *in;
    size_t n;
    fr_buf_t *out;
} io_t;

/* The BIO method, made once per process. */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static BIO_METHOD *bio_method;

/* ---- the BIO ------------------------------------------------------------------------------- */

static int bio_create(BIO *b) {
    BIO_set_init(b, 1);
    return 1;
}

static int bio_write(BIO *b, const char *data, size_t len, size_t *written) {
    io_t *io = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (!io) {
        /* Outside a call nobody can take bytes: OpenSSL must not write then. */
        *written = 0;
        return 0;
    }
    fr_buf_put(io->out, data, len);
    *written = len;
    return 1;
}

static int bio_read(BIO *b, char *data, size_t len, size_t *got) {
    io_t *io = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (!io || io->n == 0) {
        BIO_set_retry_read(b); /* more ciphertext will come with the next read from the socket */
        *got = 0;
        return 0;
    }
    size_t k = len < io->n ? len : io->n;
    memcpy(data, io->in, k);
    io->in += k;
    io->n -= k;
    *got = k;
    return 1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
    (void)b;
    (void)num;
    (void)ptr;
    /* Writes are taken whole, so there is never anything to flush; nothing else applies to
     * bytes in memory (OpenSSL treats 0 as "not supported"). */
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static void init_once(void) {
    bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "freshet connection");
    if (!bio_method || !BIO_meth_set_create(bio_method, bio_create) ||
        !BIO_meth_set_write_ex(bio_method, bio_write) ||
        !BIO_meth_set_read_ex(bio_method, bio_read) || !BIO_meth_set_ctrl(bio_method, bio_ctrl)) {
        fprintf(stderr, "freshet: cannot set up OpenSSL (BIO method)\n");
        abort();
    }
}

/* ---- sessions ------------------------------------------------------------------------------ */

static int open_side(fr_tls_t *t, fr_tls_ctx_t *ctx, int server) {
    pthread_once(&once, init_once);
    memset(t, 0, sizeof *t);
    SSL *ssl = SSL_new(ctx);
    BIO *bio = ssl ? BIO_new(bio_method) : NULL;
    if (!bio) {
        SSL_free(ssl);
        ERR_clear_error();
        return -1;
    }
    SSL_set_bio(ssl, bio, bio); /* one BIO both ways: the SSL takes its one reference */
    if (server)
        SSL_set_accept_state(ssl);
    else
        SSL_set_connect_state(ssl);
    t->ssl = ssl;
    return 0;
}

int fr_tls_open(fr_tls_t *t, fr_tls_ctx_t *ctx) {
    return open_side(t, ctx, 1);
}

int fr_tls_connect(fr_tls_t *t, fr_tls_ctx_t *ctx) {
    return open_side(t, ctx, 0);
}

void fr_tls_close(fr_tls_t *t) {
    SSL_free(t->ssl);
    t->ssl = NULL;
}

/* Points the connection's BIO at io for one call (NULL ends it). */
static void bind_io(fr_tls_t *t, io_t *io) {
    BIO_set_data(SSL_get_rbio(t->ssl), io);
}

/* After an OpenSSL call returned r <= 0: waiting for input, the peer's close, or a failure. */
static ssize_t outcome(fr_tls_t *t, int r) {
    switch (SSL_get_error(t->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        return FR_TLS_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return FR_TLS_CLOSED;
    default:
        t->failed = 1;
        return FR_TLS_ERROR;
    }
}

ssize_t fr_tls_read(fr_tls_t *t, const char **in, size_t *n, char *buf, size_t cap,
                    fr_buf_t *out) {
    if (t->failed)
        return FR_TLS_ERROR;
    io_t io = {*in, *n, out};
    bind_io(t, &io);
    /* SSL_get_error reads this thread's error queue: it must hold only this call's errors. */
    ERR_clear_error();
    ssize_t rc;
    int r = 1;
    if (!t->ready) {
        r = SSL_do_handshake(t->ssl);
        if (r == 1)
            t->ready = 1;
    }
    if (r == 1) {
        size_t got = 0;
        r = SSL_read_ex(t->ssl, buf, cap, &got);
        rc = r == 1 ? (ssize_t)got : outcome(t, r);
    } else {
        rc = outcome(t, r);
    }
    bind_io(t, NULL);
    *in = io.in;
    *n = io.n;
    return rc;
}

/* SSL_write_ex of one piece; with partial writes off, 1 means all of it. */
static int write_all(fr_tls_t *t, const char *p, size_t len) {
    size_t done = 0;
    if (SSL_write_ex(t->ssl, p, len, &done) == 1)
        return 0;
    t->failed = 1;
    return -1;
}

int fr_tls_write(fr_tls_t *t, const struct iovec *bufs, size_t nbufs, fr_buf_t *out) {
    if (!t->ready || t->failed)
        return -1;
    io_t io = {NULL, 0, out};
    bind_io(t, &io);
    ERR_clear_error();
    /* A batch is many small buffers (an event's id line, its body, a chunk head…): gathered
     * into full records, it costs one record's overhead (22 bytes in TLS 1.3) per 16 KB
     * instead of one per buffer. Whole records of a large buffer go straight through. */
    char stage[FR_TLS_RECORD];
    size_t used = 0;
    int rc = 0;
    for (size_t i = 0; i < nbufs && rc == 0; i++) {
        const char *p = bufs[i].iov_base;
        size_t len = bufs[i].iov_len;
        if (used == 0 && len >= sizeof stage) {
            size_t whole = len - len % sizeof stage;
            rc = write_all(t, p, whole);
            p += whole;
            len -= whole;
        }
        while (len > 0 && rc == 0) {
            size_t k = sizeof stage - used < len ? sizeof stage - used : len;
            memcpy(stage + used, p, k);
            used += k;
            p += k;
            len -= k;
            if (used == sizeof stage) {
                rc = write_all(t, stage, used);
                used = 0;
            }
        }
    }
    if (rc == 0 && used > 0)
        rc = write_all(t, stage, used);
    bind_io(t, NULL);
    return rc;
}

void fr_tls_shutdown(fr_tls_t *t, fr_buf_t *out) {
    if (!t->ssl || !t->ready || t->failed)
        return;
    io_t io = {NULL, 0, out};
    bind_io(t, &io);
    ERR_clear_error();
    (void)SSL_shutdown(t->ssl); /* sends close_notify; the peer's answer is not awaited */
    ERR_clear_error();
    bind_io(t, NULL);
}

const unsigned char *fr_tls_alpn(const fr_tls_t *t, unsigned *len) {
    const unsigned char *p = NULL;
    *len = 0;
    SSL_get0_alpn_selected(t->ssl, &p, len);
    return *len ? p : NULL;
}

const char *fr_tls_version(const fr_tls_t *t) {
    return SSL_get_version(t->ssl);
}

const char *fr_tls_cipher(const fr_tls_t *t) {
    return SSL_get_cipher_name(t->ssl);
}

const char *fr_tls_why(void) {
    unsigned long e = ERR_peek_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : "unknown error";
}
