/* TLS under a server connection's bytes, with OpenSSL. The session (fr_tls_t: handshake,
 * records both ways, close_notify) is codec/tls_mem.h, which does no socket I/O; this file adds
 * the server's context and the libuv form of fr_tls_write that http/conn.c uses.
 *
 *   socket ──ciphertext──► fr_tls_read ──plaintext──► the protocol (c->proto->data)
 *   fr_conn_send / fr_conn_write ──plaintext──► fr_tls_write_bufs ──ciphertext──► out ──► socket
 *
 * A context (fr_tls_ctx_t, an SSL_CTX) is a certificate chain, its key and the settings: TLS 1.2
 * and 1.3 only, forward-secret AEAD ciphers, the client's cipher order (every cipher offered is
 * strong), no compression, no renegotiation, stateless session tickets under keys shared by
 * every worker of the process (a resumed client may land on any of them), no server-side session
 * cache, record buffers released when empty, and ALPN chosen from the caller's list. Each
 * connection's SSL holds a reference to its context, so a connection keeps the context it was
 * opened with when a reload swaps it. */
#ifndef FR_TLS_H
#define FR_TLS_H

#include <stddef.h>
#include <sys/uio.h>
#include <uv.h>

#include "base/buf.h"
#include "codec/tls_mem.h"

/* Loads a PEM certificate chain and its private key into a new server context that offers the
 * protocols in `alpn` (ALPN wire format: length-prefixed names, the server's preference first;
 * copied). NULL, with a message naming the file and the reason in err, when they cannot be
 * loaded or do not match. Safe to call from any thread. */
fr_tls_ctx_t *fr_tls_ctx_new(const char *cert, const char *key, const unsigned char *alpn,
                             size_t alpn_len, char *err, size_t errlen);
/* Drops the caller's reference: connections opened with it keep it until they close. */
void fr_tls_ctx_free(fr_tls_ctx_t *ctx);

/* fr_tls_write for libuv buffers: on Unix a uv_buf_t is laid out as a struct iovec (uv.h says
 * it may be cast to one), which the asserts hold to. */
_Static_assert(sizeof(uv_buf_t) == sizeof(struct iovec), "uv_buf_t is an iovec");
_Static_assert(offsetof(uv_buf_t, base) == offsetof(struct iovec, iov_base), "uv_buf_t.base");
_Static_assert(offsetof(uv_buf_t, len) == offsetof(struct iovec, iov_len), "uv_buf_t.len");
static inline int fr_tls_write_bufs(fr_tls_t *t, const uv_buf_t *bufs, size_t nbufs,
                                    fr_buf_t *out) {
    return fr_tls_write(t, (const struct iovec *)bufs, nbufs, out);
}

#endif
