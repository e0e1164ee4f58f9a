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
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "base/util.h"
#include "codec/tls_records.h"

/* What a BIO call sees: the ciphertext left to read, and where written ciphertext goes. */
typedef struct {
    const char *in;
    size_t n;
    fr_buf_t *out;
} io_t;

/* What a TLS 1.3 server session gathers during its handshake to leave OpenSSL afterwards: the
 * application traffic secrets (from the key log) and, per direction, how many records have
 * been protected under them (OpenSSL 3.0 has no call that tells the sequence numbers). */
struct fr_tls_keys {
    unsigned char client[48], server[48]; /* CLIENT_ / SERVER_TRAFFIC_SECRET_0 */
    uint64_t rseq, wseq;                  /* records read / written under them */
    unsigned char client_len, server_len;
    unsigned rfin : 1;      /* the client's Finished was read: its records now count */
    unsigned wfin : 1;      /* ours was written */
    unsigned key_update : 1; /* a KeyUpdate went by before the switch: it is not done */
};

/* The BIO method and the ex_data slot that leads from an SSL to its fr_tls_t, made once per
 * process. */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static BIO_METHOD *bio_method;
static int tls_index = -1;

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
    tls_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* ---- what the switch needs, seen during the handshake ------------------------------------- */

/* "CLIENT_TRAFFIC_SECRET_0 <client random> <secret>", both in hex: the secret into out. */
static unsigned char parse_secret(const char *line, unsigned char *out, size_t cap) {
    const char *p = strrchr(line, ' ');
    if (!p)
        return 0;
    p++;
    size_t hex = strlen(p);
    if (hex % 2 || hex / 2 > cap)
        return 0;
    for (size_t i = 0; i < hex / 2; i++) {
        int hi = fr_hex_value(p[2 * i]), lo = fr_hex_value(p[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return 0;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return (unsigned char)(hex / 2);
}

/* OpenSSL logs each secret as it derives it; only the first application secrets are kept. */
static void on_keylog(const SSL *ssl, const char *line) {
    fr_tls_t *t = tls_index >= 0 ? SSL_get_ex_data(ssl, tls_index) : NULL;
    struct fr_tls_keys *k = t ? t->keys : NULL;
    if (!k)
        return;
    static const char client[] = "CLIENT_TRAFFIC_SECRET_0 ", server[] = "SERVER_TRAFFIC_SECRET_0 ";
    if (strncmp(line, client, sizeof client - 1) == 0)
        k->client_len = parse_secret(line, k->client, sizeof k->client);
    else if (strncmp(line, server, sizeof server - 1) == 0)
        k->server_len = parse_secret(line, k->server, sizeof k->server);
}

/* Counts the records each way after each side's Finished: OpenSSL reports every record's
 * header (write_p: ours) and every handshake message, a record's header before the messages
 * in it. The records after a Finished are the first under that side's application keys. */
static void on_message(int write_p, int version, int content_type, const void *buf, size_t len,
                       SSL *ssl, void *arg) {
    (void)version;
    (void)ssl;
    struct fr_tls_keys *k = ((fr_tls_t *)arg)->keys;
    if (!k)
        return;
    if (content_type == SSL3_RT_HEADER) {
        if (write_p && k->wfin)
            k->wseq++;
        else if (!write_p && k->rfin)
            k->rseq++;
    } else if (content_type == SSL3_RT_HANDSHAKE && len > 0) {
        unsigned char type = *(const unsigned char *)buf;
        if (type == SSL3_MT_FINISHED && write_p) {
            k->wfin = 1;
            k->wseq = 0;
        } else if (type == SSL3_MT_FINISHED) {
            k->rfin = 1;
            k->rseq = 0;
        } else if (type == SSL3_MT_KEY_UPDATE) {
            k->key_update = 1;
        }
    }
}

void fr_tls_ctx_server(fr_tls_ctx_t *ctx) {
    SSL_CTX_set_keylog_callback(ctx, on_keylog);
}

static void drop_keys(fr_tls_t *t) {
    if (!t->keys)
        return;
    if (t->ssl)
        SSL_set_msg_callback(t->ssl, NULL);
    OPENSSL_cleanse(t->keys, sizeof *t->keys);
    free(t->keys);
    t->keys = NULL;
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
    t->ssl = ssl;
    if (server) {
        SSL_set_accept_state(ssl);
        /* Only a context prepared by fr_tls_ctx_server logs the secrets the switch needs. */
        if (SSL_CTX_get_keylog_callback(ctx) == on_keylog &&
            SSL_set_ex_data(ssl, tls_index, t) == 1) {
            t->keys = fr_calloc(1, sizeof *t->keys);
            SSL_set_msg_callback(ssl, on_message);
            SSL_set_msg_callback_arg(ssl, t);
        }
    } else {
        SSL_set_connect_state(ssl);
    }
    return 0;
}

int fr_tls_open(fr_tls_t *t, fr_tls_ctx_t *ctx) {
    return open_side(t, ctx, 1);
}

int fr_tls_connect(fr_tls_t *t, fr_tls_ctx_t *ctx) {
    return open_side(t, ctx, 0);
}

void fr_tls_close(fr_tls_t *t) {
    drop_keys(t);
    SSL_free(t->ssl);
    t->ssl = NULL;
    fr_tls_rec_free(t->rec);
    t->rec = NULL;
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

/* Moves an idle TLS 1.3 server session to its own record layer and frees the SSL. Called when
 * a read has taken every input byte and OpenSSL holds none: no record is half read, and the
 * counts in t->keys are the sequence numbers of the next records each way. A session that
 * cannot switch (TLS 1.2, a KeyUpdate already, an unknown suite, a long ALPN name) gives up
 * its keys and stays on OpenSSL. */
static void try_switch(fr_tls_t *t) {
    struct fr_tls_keys *k = t->keys;
    SSL *ssl = t->ssl;
    if (!k || !t->ready || SSL_has_pending(ssl) || SSL_get_shutdown(ssl) != 0)
        return;
    const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
    int suite = cipher ? fr_tls_suite_of(SSL_CIPHER_get_id(cipher)) : -1;
    const unsigned char *alpn = NULL;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
    fr_tls_rec_t *rec = NULL;
    if (SSL_version(ssl) == TLS1_3_VERSION && !k->key_update && k->rfin && k->wfin &&
        suite >= 0 && k->client_len == fr_tls_suite_secret_len(suite) &&
        k->server_len == k->client_len)
        rec = fr_tls_rec_new(suite, k->client, k->rseq, k->server, k->wseq);
    if (rec && fr_tls_rec_set_alpn(rec, alpn, alpn_len) < 0) {
        fr_tls_rec_free(rec);
        rec = NULL;
    }
    drop_keys(t);
    if (!rec)
        return;
    SSL_free(ssl);
    t->ssl = NULL;
    t->rec = rec;
}

ssize_t fr_tls_read(fr_tls_t *t, const char **in, size_t *n, char *buf, size_t cap,
                    fr_buf_t *out) {
    if (t->failed)
        return FR_TLS_ERROR;
    if (t->rec) {
        ssize_t got = fr_tls_rec_read(t->rec, in, n, buf, cap, out);
        if (got == FR_TLS_ERROR)
            t->failed = 1;
        return got;
    }
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
    if (t->keys && t->ready && rc == FR_TLS_AGAIN && io.n == 0)
        try_switch(t);
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
    if (t->rec) {
        if (fr_tls_rec_write(t->rec, bufs, nbufs, out) == 0)
            return 0;
        t->failed = 1;
        return -1;
    }
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
    if (!t->ready || t->failed)
        return;
    if (t->rec) {
        fr_tls_rec_close_notify(t->rec, out);
        return;
    }
    if (!t->ssl)
        return;
    io_t io = {NULL, 0, out};
    bind_io(t, &io);
    ERR_clear_error();
    (void)SSL_shutdown(t->ssl); /* sends close_notify; the peer's answer is not awaited */
    ERR_clear_error();
    bind_io(t, NULL);
}

const unsigned char *fr_tls_alpn(const fr_tls_t *t, unsigned *len) {
    if (t->rec)
        return fr_tls_rec_alpn(t->rec, len);
    const unsigned char *p = NULL;
    *len = 0;
    SSL_get0_alpn_selected(t->ssl, &p, len);
    return *len ? p : NULL;
}

const char *fr_tls_version(const fr_tls_t *t) {
    return t->rec ? "TLSv1.3" : SSL_get_version(t->ssl);
}

const char *fr_tls_cipher(const fr_tls_t *t) {
    return t->rec ? fr_tls_rec_cipher(t->rec) : SSL_get_cipher_name(t->ssl);
}

/* OpenSSL's queue first: a switched session's failure clears it, and a failure of OpenSSL's
 * own leaves its reason there, whatever a record layer said earlier on this thread. */
const char *fr_tls_why(void) {
    unsigned long e = ERR_peek_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    if (!r)
        r = fr_tls_rec_why();
    return r ? r : "unknown error";
}
