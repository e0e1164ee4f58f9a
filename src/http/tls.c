/* TLS with OpenSSL over bytes held in memory; see tls.h.
 *
 * Each connection's SSL reads and writes through one BIO of our own ("freshet connection")
 * that keeps nothing: during a call, BIO data points at an io_t on the caller's stack, so a
 * read is served from the caller's ciphertext and a write is appended to the caller's `out`.
 * Outside a call the BIO has no buffer and no pointer, so nothing of one connection can reach
 * another's (the worker serves many on one thread, one call at a time). */
#include "http/tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "base/util.h"

/* What a BIO call sees: the ciphertext left to read, and where written ciphertext goes. */
typedef struct {
    const char *in;
    size_t n;
    fr_buf_t *out;
} io_t;

/* Made once per process: the BIO method, the ex_data slot that ties a context's ALPN list to
 * it, and the session ticket keys every worker's contexts share. */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static BIO_METHOD *bio_method;
static int alpn_index = -1;
static unsigned char ticket_keys[80]; /* key name 16, HMAC key 32, AES key 32 (OpenSSL 3) */
static int ticket_keys_ready;

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

/* ---- contexts ------------------------------------------------------------------------------ */

static void free_alpn(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                      void *argp) {
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    free(ptr);
}

static void init_once(void) {
    bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "freshet connection");
    if (!bio_method || !BIO_meth_set_create(bio_method, bio_create) ||
        !BIO_meth_set_write_ex(bio_method, bio_write) ||
        !BIO_meth_set_read_ex(bio_method, bio_read) || !BIO_meth_set_ctrl(bio_method, bio_ctrl)) {
        fprintf(stderr, "freshet: cannot set up OpenSSL (BIO method)\n");
        abort();
    }
    alpn_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_alpn);
    ticket_keys_ready = RAND_bytes(ticket_keys, sizeof ticket_keys) == 1;
}

/* The context's ALPN list: a length, then the names in wire format. */
typedef struct {
    unsigned len;
    unsigned char wire[];
} alpn_t;

/* Picks the first of the server's protocols that the client offers; with none in common the
 * handshake fails with no_application_protocol (RFC 7301, 3.2). A client that sends no ALPN
 * is not asked (and speaks HTTP/1.1). */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned inlen, void *arg) {
    (void)arg;
    const alpn_t *a = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), alpn_index);
    unsigned char *sel = NULL, sel_len = 0;
    if (!a || SSL_select_next_proto(&sel, &sel_len, a->wire, a->len, in, inlen) !=
                  OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = sel;
    *outlen = sel_len;
    return SSL_TLSEXT_ERR_OK;
}

/* A key with a passphrase is refused instead of prompting on the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

/* The reason of the first error OpenSSL queued on this thread. */
static const char *first_reason(void) {
    unsigned long e = ERR_peek_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : "unknown error";
}

/* Fails early with the system's word when a file cannot even be opened. */
static int readable(const char *what, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "tls: cannot read the %s %s: %s", what, path, strerror(errno));
        return 0;
    }
    fclose(f);
    return 1;
}

static int configure(SSL_CTX *ctx, const unsigned char *alpn, size_t alpn_len) {
    /* TLS 1.2 and 1.3. For 1.2, forward-secret AEAD ciphers only; 1.3's suites all are. */
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20"))
        return -1;
    /* Every cipher offered is strong, so the client's order decides: a phone without AES
     * instructions picks ChaCha20. */
    SSL_CTX_clear_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    /* OpenSSL's read and write buffers (about 17 KB each) go back to malloc whenever they are
     * empty: an idle stream keeps neither. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* Resumption by stateless tickets (an EventSource that reconnects skips the full
     * handshake); no server-side cache, so resumption costs no memory per session. One ticket
     * per handshake is enough for a client that holds one connection. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 1);
    if (ticket_keys_ready &&
        SSL_CTX_set_tlsext_ticket_keys(ctx, ticket_keys, sizeof ticket_keys) != 1)
        return -1;
    alpn_t *a = fr_malloc(sizeof *a + alpn_len);
    a->len = (unsigned)alpn_len;
    memcpy(a->wire, alpn, alpn_len);
    if (!SSL_CTX_set_ex_data(ctx, alpn_index, a)) {
        free(a);
        return -1;
    }
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    return 0;
}

fr_tls_ctx_t *fr_tls_ctx_new(const char *cert, const char *key, const unsigned char *alpn,
                             size_t alpn_len, char *err, size_t errlen) {
    pthread_once(&once, init_once);
    if (!readable("certificate", cert, err, errlen) || !readable("key", key, err, errlen))
        return NULL;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx || configure(ctx, alpn, alpn_len) < 0) {
        snprintf(err, errlen, "tls: cannot set up a context: %s", first_reason());
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        snprintf(err, errlen, "tls: cannot load the certificate %s: %s (a PEM certificate, then "
                 "its chain, is expected)", cert, first_reason());
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        unsigned long e = ERR_peek_last_error();
        if (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
            snprintf(err, errlen, "tls: the key %s does not match the certificate %s", key, cert);
        else
            snprintf(err, errlen, "tls: cannot load the key %s: %s (an unencrypted PEM key is "
                     "expected)", key, first_reason());
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "tls: the key %s does not match the certificate %s", key, cert);
        goto fail;
    }
    ERR_clear_error();
    return ctx;
fail:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

void fr_tls_ctx_free(fr_tls_ctx_t *ctx) {
    SSL_CTX_free(ctx);
}

/* ---- connections --------------------------------------------------------------------------- */

int fr_tls_open(fr_tls_t *t, fr_tls_ctx_t *ctx) {
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
    SSL_set_accept_state(ssl);
    t->ssl = ssl;
    return 0;
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

int fr_tls_write(fr_tls_t *t, const uv_buf_t *bufs, size_t nbufs, fr_buf_t *out) {
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
        const char *p = bufs[i].base;
        size_t len = bufs[i].len;
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
    return first_reason();
}
