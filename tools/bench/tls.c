/* --tls: OpenSSL clients on memory BIOs; see tls.h. */
#include "tls.h"

#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

static SSL_CTX *ctx;
static int ctx_failed;

static SSL_CTX *context(const fr_opts_t *o) {
    if (ctx || ctx_failed)
        return ctx;
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        goto fail;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Idle connections hold no record buffers here either: 10,000 of them stay cheap. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (o->cacert[0]) {
        if (SSL_CTX_load_verify_locations(ctx, o->cacert, NULL) != 1) {
            fprintf(stderr, "freshet-bench: --cacert %s: %s\n", o->cacert,
                    ERR_reason_error_string(ERR_peek_error()));
            goto fail;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    ctx = NULL;
    ctx_failed = 1;
    return NULL;
}

SSL *fr_btls_new(const fr_opts_t *o) {
    SSL_CTX *c = context(o);
    if (!c)
        return NULL;
    SSL *ssl = SSL_new(c);
    BIO *in = BIO_new(BIO_s_mem()), *out = BIO_new(BIO_s_mem());
    if (!ssl || !in || !out) {
        SSL_free(ssl);
        BIO_free(in);
        BIO_free(out);
        return NULL;
    }
    SSL_set_bio(ssl, in, out);
    SSL_set_connect_state(ssl);
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_set_alpn_protos(ssl, alpn, sizeof alpn - 1);
    if (o->cacert[0]) {
        X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
        if (strcmp(o->host, "localhost") == 0)
            X509_VERIFY_PARAM_set1_host(param, "localhost", 0);
        else
            X509_VERIFY_PARAM_set1_ip_asc(param, o->host);
    } else if (strcmp(o->host, "localhost") == 0) {
        SSL_set_tlsext_host_name(ssl, "localhost");
    }
    return ssl;
}

void fr_btls_free(SSL *ssl) {
    SSL_free(ssl);
}

void fr_btls_input(SSL *ssl, const char *p, size_t n) {
    size_t done;
    if (n)
        BIO_write_ex(SSL_get_rbio(ssl), p, n, &done); /* a memory BIO takes everything */
}

int fr_btls_handshake(SSL *ssl, const char **why) {
    ERR_clear_error();
    int r = SSL_do_handshake(ssl);
    if (r == 1)
        return 1;
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return 0;
    unsigned long err = ERR_peek_error();
    *why = err ? ERR_reason_error_string(err) : "the server closed the connection";
    if (!*why)
        *why = "TLS handshake failed";
    return -1;
}

ssize_t fr_btls_read(SSL *ssl, char *buf, size_t cap) {
    size_t got = 0;
    ERR_clear_error();
    if (SSL_read_ex(ssl, buf, cap, &got) == 1)
        return (ssize_t)got;
    return SSL_get_error(ssl, 0) == SSL_ERROR_WANT_READ ? 0 : -1;
}

int fr_btls_write(SSL *ssl, const char *p, size_t n) {
    size_t done;
    ERR_clear_error();
    return SSL_write_ex(ssl, p, n, &done) == 1 ? 0 : -1;
}

size_t fr_btls_take(SSL *ssl, char *buf, size_t cap) {
    size_t got = 0;
    if (BIO_read_ex(SSL_get_wbio(ssl), buf, cap, &got) != 1)
        return 0;
    return got;
}
