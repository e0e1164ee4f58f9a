/* A TLS session over bytes held in memory, with OpenSSL: the engine under both the server's
 * connections (http/tls.h, http/conn.c) and the backend client's (client/https.h). It does no
 * socket I/O: ciphertext comes in as a borrowed buffer and goes out into an fr_buf_t that the
 * caller sends, so both sides can be tested and fuzzed without a network.
 *
 *   socket ──ciphertext──► fr_tls_read ──plaintext──► the protocol
 *   the protocol ──plaintext──► fr_tls_write ──ciphertext──► out ──► socket
 *
 * A session's state is its SSL and two bits. OpenSSL's record buffers are released whenever
 * they are empty when the context asks for it (SSL_MODE_RELEASE_BUFFERS, which both contexts
 * set), and the BIO keeps no bytes: reads are served from the caller's buffer during the call,
 * writes land in the caller's `out`. An idle session holds only what OpenSSL needs for it.
 *
 * A TLS 1.3 server session goes further once its handshake is done and it is idle (no input
 * left, nothing buffered): its traffic secrets and record counts, kept during the handshake,
 * move to a record layer of our own (codec/tls_records.h) and the SSL is freed, so an idle
 * session keeps two keyed AEAD contexts instead of OpenSSL's session state (about 14 KB). The
 * session tickets are written within the handshake, so resumption is unaffected. TLS 1.2
 * sessions, a session that saw a KeyUpdate during the handshake, an unknown suite and the
 * client side keep their SSL.
 *
 * The contexts (SSL_CTX) are the callers': the server's certificate and tickets in http/tls.c
 * (fr_tls_ctx_server prepares it for the switch), the client's trust store in client/https.c. */
#ifndef FR_TLS_MEM_H
#define FR_TLS_MEM_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "base/buf.h"

/* The largest plaintext one TLS record carries: fr_tls_read never returns more at once. */
#define FR_TLS_RECORD 16384

typedef struct ssl_ctx_st fr_tls_ctx_t;

typedef struct {
    struct ssl_st *ssl;       /* owned; NULL once the session runs on rec */
    struct fr_tls_rec *rec;   /* owned: the record layer of a switched session, else NULL */
    struct fr_tls_keys *keys; /* owned: what the switch needs, gathered until it happens */
    unsigned ready : 1;       /* the handshake is complete */
    unsigned failed : 1;      /* a fatal error: the session must not be used (nor shut down) */
} fr_tls_t;

/* fr_tls_read results besides a byte count. */
enum { FR_TLS_AGAIN = 0, FR_TLS_CLOSED = -1, FR_TLS_ERROR = -2 };

/* Sets up a server context so that its sessions can leave OpenSSL after the handshake (it
 * installs the context's key log callback). Contexts not set up keep their SSLs. */
void fr_tls_ctx_server(fr_tls_ctx_t *ctx);

/* Starts the server side of a session on ctx. Returns 0, or -1 (out of memory). */
int fr_tls_open(fr_tls_t *t, fr_tls_ctx_t *ctx);
/* Starts the client side of a session on ctx; the caller sets what the session needs before
 * its first fr_tls_read (server name, host check, ALPN) on t->ssl. The first fr_tls_read,
 * with no input, writes the ClientHello. Returns 0, or -1 (out of memory). */
int fr_tls_connect(fr_tls_t *t, fr_tls_ctx_t *ctx);
/* Frees the session's state. Safe on a state that was never opened. */
void fr_tls_close(fr_tls_t *t);

/* Takes ciphertext the peer sent from *in / *n (advanced past what was consumed; borrowed for
 * the call) and returns plaintext: > 0 bytes in buf (cap at least FR_TLS_RECORD is best),
 * FR_TLS_AGAIN when every input byte is taken and more must come, FR_TLS_CLOSED when the peer
 * sent close_notify, FR_TLS_ERROR when the handshake or a record failed (fr_tls_why says why;
 * the connection must close). Drives the handshake first; what this side must send meanwhile
 * (handshake flights, session tickets, alerts, key updates) is appended to out. Call it again
 * until it returns <= 0. */
ssize_t fr_tls_read(fr_tls_t *t, const char **in, size_t *n, char *buf, size_t cap,
                    fr_buf_t *out);

/* Encrypts bufs[0..nbufs) as application data and appends the records to out; small buffers
 * are gathered into full records. Returns 0, or -1 when the session is not ready or failed.
 * (libuv's uv_buf_t has struct iovec's layout on Unix: http/tls.h passes those.) */
int fr_tls_write(fr_tls_t *t, const struct iovec *bufs, size_t nbufs, fr_buf_t *out);

/* Appends a close_notify alert to out when the session is up and sound. */
void fr_tls_shutdown(fr_tls_t *t, fr_buf_t *out);

/* The protocol ALPN chose (not NUL-terminated; *len 0 and NULL when none was agreed). */
const unsigned char *fr_tls_alpn(const fr_tls_t *t, unsigned *len);
/* "TLSv1.3 TLS_AES_128_GCM_SHA256", for log lines; borrowed from OpenSSL. */
const char *fr_tls_version(const fr_tls_t *t);
const char *fr_tls_cipher(const fr_tls_t *t);
/* Why the last call on this thread failed, as OpenSSL puts it ("wrong version number"). */
const char *fr_tls_why(void);

#endif
