/* The backend client's TLS contexts and sessions; see https.h.
 *
 * Resumption: each context asks OpenSSL for the sessions servers offer (tickets) and keeps none
 * itself (SSL_SESS_CACHE_NO_INTERNAL_STORE); on_new_session files each under the key of the
 * connection that got it, the pool's key (scheme, host, port and trust), and a new connection
 * under the same key offers it. A session is only resumed where a full handshake with the
 * same checks made it. */
#include "client/https.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "base/hash.h"
#include "base/util.h"

/* One trust store: the system's (ca NULL) or a CA file's. */
typedef struct {
    char *ca;          /* owned; NULL for the system's store */
    SSL_CTX *ctx;      /* a reference */
} store_t;

/* The last session a server gave for one key. */
typedef struct {
    fr_hnode_t hnode;
    char *key;          /* owned */
    SSL_SESSION *sess;  /* a reference */
} session_t;

struct fr_https_s {
    store_t stores[FR_HTTPS_MAX_CTX];
    unsigned n;
    fr_htable_t sessions; /* session_t by key */
};

/* ex_data slots: a context's fr_https_t, a session's key (borrowed from its connection). */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int ctx_index = -1, key_index = -1;

static void init_once(void) {
    ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    key_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

fr_https_t *fr_https_new(void) {
    pthread_once(&once, init_once);
    fr_https_t *h = fr_calloc(1, sizeof(fr_https_t));
    fr_htable_init(&h->sessions);
    return h;
}

static void session_drop(fr_https_t *h, session_t *e) {
    fr_htable_remove(&h->sessions, &e->hnode);
    SSL_SESSION_free(e->sess);
    free(e->key);
    free(e);
}

void fr_https_free(fr_https_t *h) {
    if (!h)
        return;
    fr_htable_iter_t it;
    fr_htable_iter_init(&h->sessions, &it);
    fr_hnode_t *n;
    while ((n = fr_htable_iter_next(&it)))
        session_drop(h, FR_HTABLE_ENTRY(n, session_t, hnode));
    fr_htable_close(&h->sessions);
    for (unsigned i = 0; i < h->n; i++) {
        free(h->stores[i].ca);
        SSL_CTX_free(h->stores[i].ctx);
    }
    free(h);
}

static session_t *session_find(const fr_https_t *h, const char *key) {
    fr_hnode_t *n = fr_htable_find(&h->sessions, key, strlen(key));
    return n ? FR_HTABLE_ENTRY(n, session_t, hnode) : NULL;
}

/* A server gave a session (TLS 1.3 sends its tickets after the handshake, often two): it
 * replaces the key's last one. Returns 1: the reference is taken. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess) {
    fr_https_t *h = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_index);
    const char *key = SSL_get_ex_data(ssl, key_index);
    if (!h || !key)
        return 0;
    session_t *e = session_find(h, key);
    if (e) {
        SSL_SESSION_free(e->sess);
        e->sess = sess;
        return 1;
    }
    if (h->sessions.count >= FR_HTTPS_MAX_SESSIONS)
        return 0;
    e = fr_calloc(1, sizeof *e);
    e->key = fr_strdup(key);
    e->sess = sess;
    fr_htable_insert(&h->sessions, &e->hnode, e->key, strlen(e->key));
    return 1;
}

static SSL_CTX *ctx_make(const char *ca, char *err, size_t errlen) {
    static const unsigned char alpn[] = "\x08http/1.1";
    if (ca) {
        /* The system's word for a file that cannot even be opened. */
        FILE *f = fopen(ca, "rb");
        if (!f) {
            snprintf(err, errlen, "cannot read the ca file %s: %s", ca, strerror(errno));
            return NULL;
        }
        fclose(f);
    }
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
        SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1) != 0) {
        snprintf(err, errlen, "cannot set up tls: %s", fr_tls_why());
        goto fail;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    /* A pooled connection waits idle most of its life: it keeps no record buffers then. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    if (ca ? SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1
           : SSL_CTX_set_default_verify_paths(ctx) != 1) {
        if (ca)
            snprintf(err, errlen, "the ca file %s holds no certificate (%s): PEM certificates "
                     "are expected", ca, fr_tls_why());
        else
            snprintf(err, errlen, "cannot load the system's certificates: %s", fr_tls_why());
        goto fail;
    }
    ERR_clear_error();
    return ctx;
fail:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

fr_tls_ctx_t *fr_https_ctx(fr_https_t *h, const char *ca_file, char *err, size_t errlen) {
    for (unsigned i = 0; i < h->n; i++) {
        const char *ca = h->stores[i].ca;
        if (ca_file ? ca && strcmp(ca, ca_file) == 0 : !ca)
            return h->stores[i].ctx;
    }
    if (h->n == FR_HTTPS_MAX_CTX) {
        snprintf(err, errlen, "too many ca files (at most %d trust stores per worker)",
                 FR_HTTPS_MAX_CTX);
        return NULL;
    }
    SSL_CTX *ctx = ctx_make(ca_file, err, errlen);
    if (!ctx)
        return NULL;
    SSL_CTX_set_ex_data(ctx, ctx_index, h);
    h->stores[h->n].ca = ca_file ? fr_strdup(ca_file) : NULL;
    h->stores[h->n].ctx = ctx;
    h->n++;
    return ctx;
}

int fr_https_open(fr_tls_t *t, fr_https_t *h, fr_tls_ctx_t *ctx, const char *host, int verify,
                  const char *key) {
    if (fr_tls_connect(t, ctx) < 0)
        return -1;
    SSL *ssl = t->ssl;
    session_t *e = key ? session_find(h, key) : NULL;
    if (key && !SSL_set_ex_data(ssl, key_index, (void *)key)) {
        fr_tls_close(t);
        return -1;
    }
    /* A session the server no longer takes costs a full handshake, as without one. */
    if (e && SSL_SESSION_is_resumable(e->sess))
        SSL_set_session(ssl, e->sess);
    unsigned char bin[16];
    int ip = inet_pton(AF_INET, host, bin) == 1 || inet_pton(AF_INET6, host, bin) == 1;
    int ok = 1;
    /* RFC 6066: the server name is a host name, never an address. */
    if (!ip)
        ok = SSL_set_tlsext_host_name(ssl, host) == 1;
    if (ok && verify) {
        X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host) == 1
                : X509_VERIFY_PARAM_set1_host(param, host, 0) == 1;
    } else if (ok) {
        SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
    }
    if (!ok) {
        ERR_clear_error();
        fr_tls_close(t);
        return -1;
    }
    return 0;
}

void fr_https_why(const fr_tls_t *t, char *buf, size_t len) {
    unsigned long e = ERR_peek_error();
    if (e && ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
        long v = SSL_get_verify_result(t->ssl);
        snprintf(buf, len, "certificate verify failed: %s", X509_verify_cert_error_string(v));
        return;
    }
    snprintf(buf, len, "tls handshake failed: %s", fr_tls_why());
}
