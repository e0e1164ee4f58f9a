/* TLS under a connection's bytes, with OpenSSL. This file does no socket I/O: ciphertext comes
 * in as a borrowed buffer and goes out into an fr_buf_t that the caller sends (http/conn.c), so
 * the layer can be tested and fuzzed without a network.
 *
 *   socket ──ciphertext──► fr_tls_read ──plaintext──► the protocol (c->proto->data)
 *   fr_conn_send / fr_conn_write ──plaintext──► fr_tls_write ──ciphertext──► out ──► socket
 *
 * A context (fr_tls_ctx_t, an SSL_CTX) is a certificate chain, its key and the settings: TLS 1.2
 * and 1.3 only, forward-secret AEAD ciphers, the client's cipher order (every cipher offered is
 * strong), no compression, no renegotiation, stateless session tickets under keys shared by
 * every worker of the process (a resumed client may land on any of them), no server-side session
 * cache, and ALPN chosen from the caller's list. Each connection's SSL holds a reference to its
 * context, so a connection keeps the context it was opened with when a reload swaps it.
 *
 * A connection's state is its SSL and two bits. OpenSSL's record buffers are released whenever
 * they are empty (SSL_MODE_RELEASE_BUFFERS), and its BIO keeps no bytes: reads are served from
 * the caller's buffer during the call, writes land in the caller's `out`. An idle connection
 * holds only what OpenSSL needs for its session. */
#ifndef FR_TLS_H
#define FR_TLS_H

#include <stddef.h>
#include <sys/types.h>
#include <uv.h>

#include "base/buf.h"

/* The largest plaintext one TLS record carries: fr_tls_read never returns more at once. */
#define FR_TLS_RECORD 16384

typedef struct ssl_ctx_st fr_tls_ctx_t;

typedef struct {
    struct ssl_st *ssl;  /* owned */
    unsigned ready : 1;  /* the handshake is complete */
    unsigned failed : 1; /* a fatal error: the session must not be used (nor shut down) */
} fr_tls_t;

/* fr_tls_read results besides a byte count. */
enum { FR_TLS_AGAIN = 0, FR_TLS_CLOSED = -1, FR_TLS_ERROR = -2 };

/* Loads a PEM certificate chain and its private key into a new server context that offers the
 * protocols in `alpn` (ALPN wire format: length-prefixed names, the server's preference first;
 * copied). NULL, with a message naming the file and the reason in err, when they cannot be
 * loaded or do not match. Safe to call from any thread. */
fr_tls_ctx_t *fr_tls_ctx_new(const char *cert, const char *key, const unsigned char *alpn,
                             size_t alpn_len, char *err, size_t errlen);
/* Drops the caller's reference: connections opened with it keep it until they close. */
void fr_tls_ctx_free(fr_tls_ctx_t *ctx);

/* Starts the server side of a connection on ctx. Returns 0, or -1 (out of memory). */
int fr_tls_open(fr_tls_t *t, fr_tls_ctx_t *ctx);
/* Frees the connection's state. Safe on a state that was never opened. */
void fr_tls_close(fr_tls_t *t);

/* Takes ciphertext the peer sent from *in / *n (advanced past what was consumed; borrowed for
 * the call) and returns plaintext: > 0 bytes in buf (cap at least FR_TLS_RECORD is best),
 * FR_TLS_AGAIN when every input byte is taken and more must come, FR_TLS_CLOSED when the peer
 * sent close_notify, FR_TLS_ERROR when the handshake or a record failed (fr_tls_why says why;
 * the connection must close). Drives the handshake first; what the server must send meanwhile
 * (handshake flights, session tickets, alerts, key updates) is appended to out. Call it again
 * until it returns <= 0. */
ssize_t fr_tls_read(fr_tls_t *t, const char **in, size_t *n, char *buf, size_t cap,
                    fr_buf_t *out);

/* Encrypts bufs[0..nbufs) as application data and appends the records to out; small buffers
 * are gathered into full records. Returns 0, or -1 when the session is not ready or failed. */
int fr_tls_write(fr_tls_t *t, const uv_buf_t *bufs, size_t nbufs, fr_buf_t *out);

/* Appends a close_notify alert to out when the session is up and sound. */
void fr_tls_shutdown(fr_tls_t *t, fr_buf_t *out);

/* The protocol ALPN chose (not NUL-terminated; *len 0 and NULL when the client offered none). */
const unsigned char *fr_tls_alpn(const fr_tls_t *t, unsigned *len);
/* "TLSv1.3 TLS_AES_128_GCM_SHA256", for log lines; borrowed from OpenSSL. */
const char *fr_tls_version(const fr_tls_t *t);
const char *fr_tls_cipher(const fr_tls_t *t);
/* Why the last call on this thread failed, as OpenSSL puts it ("wrong version number"). */
const char *fr_tls_why(void);

#endif
