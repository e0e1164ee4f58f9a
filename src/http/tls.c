/* The server's TLS contexts; see tls.h. The sessions themselves run in codec/tls_mem.c. */
#include "http/tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "base/util.h"

/* Made once per process: the ex_data slot that ties a context's ALPN list to it, and the
 * session ticket keys every worker's contexts share. */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int alpn_index = -1;
static unsigned char ticket_keys[80]; /* key name 16, HMAC key 32, AES key 32 (OpenSSL 3) */
static int ticket_keys_ready;

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
    /* An idle TLS 1.3 session leaves OpenSSL for a record layer of its own (codec/tls_mem.h). */
    fr_tls_ctx_server(ctx);
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
        snprintf(err, errlen, "tls: cannot set up a context: %s", fr_tls_why());
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        snprintf(err, errlen, "tls: cannot load the certificate %s: %s (a PEM certificate, then "
                 "its chain, is expected)", cert, fr_tls_why());
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        unsigned long e = ERR_peek_last_error();
        if (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
            snprintf(err, errlen, "tls: the key %s does not match the certificate %s", key, cert);
        else
            snprintf(err, errlen, "tls: cannot load the key %s: %s (an unencrypted PEM key is "
                     "expected)", key, fr_tls_why());
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

