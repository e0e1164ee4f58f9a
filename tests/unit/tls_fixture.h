/* What the TLS unit test (test_tls.c) and the TLS fuzz target (tests/fuzz/fuzz_tls.c) share: a
 * self-signed certificate made with OpenSSL's API in a temp dir, and an OpenSSL client on
 * memory BIOs that talks to the server side of http/tls.c without a socket.
 *
 *   client SSL ──wbio──► bytes ──fr_tls_read──► server        (split as the caller likes)
 *   client SSL ◄──rbio── bytes ◄──out (fr_buf_t)── server
 *
 * Header-only and static inline (a test uses what it needs), like the other test helpers. */
#ifndef FR_TLS_FIXTURE_H
#define FR_TLS_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* A P-256 key and a certificate for "localhost" signed by it, written as PEM files cert_path
 * and key_path (each at most 256 bytes) in a new temp dir. Returns 0 or -1. */
typedef struct {
    char dir[64];
    char cert[256];
    char key[256];
} tls_fx_files_t;

/* As tls_fx_write_pair, with subjectAltName san ("DNS:localhost,IP:127.0.0.1") unless NULL. */
static inline int tls_fx_write_pair_alt(const char *cert_path, const char *key_path, const char *cn,
                                 const char *san) {
    int rc = -1;
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    FILE *fc = NULL, *fk = NULL;
    if (!pkey || !x)
        goto done;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, pkey);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, name);
    if (san) {
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
        int added = ext && X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
        if (!added)
            goto done;
    }
    if (!X509_sign(x, pkey, EVP_sha256()))
        goto done;
    fc = fopen(cert_path, "w");
    fk = fopen(key_path, "w");
    if (!fc || !fk || !PEM_write_X509(fc, x) ||
        !PEM_write_PrivateKey(fk, pkey, NULL, NULL, 0, NULL, NULL))
        goto done;
    rc = 0;
done:
    if (fc)
        fclose(fc);
    if (fk)
        fclose(fk);
    X509_free(x);
    EVP_PKEY_free(pkey);
    return rc;
}

static inline int tls_fx_write_pair(const char *cert_path, const char *key_path, const char *cn) {
    return tls_fx_write_pair_alt(cert_path, key_path, cn, NULL);
}

static inline int tls_fx_files_make(tls_fx_files_t *f) {
    snprintf(f->dir, sizeof f->dir, "/tmp/frtlsXXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->cert, sizeof f->cert, "%s/cert.pem", f->dir);
    snprintf(f->key, sizeof f->key, "%s/key.pem", f->dir);
    return tls_fx_write_pair(f->cert, f->key, "localhost");
}

/* Removes what tls_fx_files_make and the test wrote into the dir (plain files only). */
static inline void tls_fx_files_remove(tls_fx_files_t *f, const char *const *more, size_t nmore) {
    unlink(f->cert);
    unlink(f->key);
    for (size_t i = 0; i < nmore; i++) {
        char p[320];
        snprintf(p, sizeof p, "%s/%s", f->dir, more[i]);
        unlink(p);
    }
    rmdir(f->dir);
}

/* ---- a client on memory BIOs ------------------------------------------------------------- */

typedef struct {
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *to_server;   /* the client writes records here (its wbio) */
    BIO *from_server; /* records from the server go here (its rbio) */
} tls_fx_client_t;

/* alpn: wire format or NULL for none. The client does not check the certificate. */
static inline int tls_fx_client_new(tls_fx_client_t *c, const unsigned char *alpn, unsigned alpn_len) {
    memset(c, 0, sizeof *c);
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (!c->ctx)
        return -1;
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
    c->ssl = SSL_new(c->ctx);
    c->to_server = BIO_new(BIO_s_mem());
    c->from_server = BIO_new(BIO_s_mem());
    if (!c->ssl || !c->to_server || !c->from_server)
        return -1;
    SSL_set_bio(c->ssl, c->from_server, c->to_server);
    SSL_set_connect_state(c->ssl);
    if (alpn && SSL_set_alpn_protos(c->ssl, alpn, alpn_len) != 0)
        return -1;
    return 0;
}

static inline void tls_fx_client_free(tls_fx_client_t *c) {
    SSL_free(c->ssl); /* frees both BIOs */
    SSL_CTX_free(c->ctx);
    memset(c, 0, sizeof *c);
}

/* Takes what the client has written so far (malloc'd; *n bytes; NULL when none). */
static inline char *tls_fx_client_output(tls_fx_client_t *c, size_t *n) {
    size_t pending = BIO_ctrl_pending(c->to_server);
    *n = pending;
    if (!pending)
        return NULL;
    char *p = malloc(pending);
    if (!p)
        abort();
    BIO_read(c->to_server, p, (int)pending);
    return p;
}

/* Hands the client what the server wrote. */
static inline void tls_fx_client_input(tls_fx_client_t *c, const char *p, size_t n) {
    if (n)
        BIO_write(c->from_server, p, (int)n);
}

#endif
