/* The backend client's TLS contexts and sessions; see https.h. */
#include "client/https.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "base/util.h"

/* One trust store: the system's (ca NULL) or a CA file's. */
typedef struct {
    char *ca;          /* owned; NULL for the system's store */
    SSL_CTX *ctx;      /* a reference */
} store_t;

struct fr_https_s {
    store_t stores[FR_HTTPS_MAX_CTX];
    unsigned n;
};

fr_https_t *fr_https_new(void) {
    return fr_calloc(1, sizeof(fr_https_t));
}

void fr_https_free(fr_https_t *h) {
    if (!h)
        return;
    for (unsigned i = 0; i < h->n; i++) {
        free(h->stores[i].ca);
        SSL_CTX_free(h->stores[i].ctx);
    }
    free(h);
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
    h->stores[h->n].ca = ca_file ? fr_strdup(ca_file) : NULL;
    h->stores[h->n].ctx = ctx;
    h->n++;
    return ctx;
}

int fr_https_open(fr_tls_t *t, fr_tls_ctx_t *ctx, const char *host, int verify) {
    if (fr_tls_connect(t, ctx) < 0)
        return -1;
    SSL *ssl = t->ssl;
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
