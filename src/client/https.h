/* The backend client's TLS: the contexts its https:// calls verify servers with, and the client
 * side of a session set up for one host. The session itself is codec/tls_mem.h's, driven by
 * client/http_client.c over the connection's bytes.
 *
 *   fr_https_ctx(ca_file) ──► an SSL_CTX per trust store, made on first use and kept: the
 *        system's (SSL_CTX_set_default_verify_paths: Debian's ca-certificates) or one CA file
 *   fr_https_open(ctx, host, verify, key) ──► SNI (names, not addresses), the name or address
 *        the certificate must carry, ALPN http/1.1, the last session a server gave for key
 *        (resumption: no certificate to check, fewer round trips) ──► fr_tls_read drives the
 *        handshake
 *   fr_https_why ──► "certificate verify failed: …" or "tls handshake failed: …"
 *
 * A set of contexts belongs to one client (one worker): no locking. Contexts allow TLS 1.2 and
 * 1.3 only and release their record buffers when empty (SSL_MODE_RELEASE_BUFFERS), so a pooled
 * idle connection keeps little more than its session. */
#ifndef FR_HTTPS_H
#define FR_HTTPS_H

#include <stddef.h>

#include "codec/tls_mem.h"

typedef struct fr_https_s fr_https_t;

/* At most this many trust stores (the system's and CA files) per client. */
#define FR_HTTPS_MAX_CTX 16
/* At most this many keys keep a session to resume (one per pool: host, port and trust). */
#define FR_HTTPS_MAX_SESSIONS 256

fr_https_t *fr_https_new(void);
/* Drops the client's references: sessions still open keep their context until they close. */
void fr_https_free(fr_https_t *h);

/* The context trusting ca_file (a PEM file of one or more certificates), or the system's store
 * when ca_file is NULL; made on the first call and kept (the file is read then, once). NULL with
 * a message in err ("cannot read the ca file …: …", "the ca file … holds no certificate") when
 * it cannot be made. */
fr_tls_ctx_t *fr_https_ctx(fr_https_t *h, const char *ca_file, char *err, size_t errlen);

/* Starts the client side of a session on ctx (one of h's) for host (a name, or an IPv4 or IPv6
 * address without brackets). With verify, the handshake fails unless the server's chain leads
 * to the context's store and its certificate names host; without, any certificate is taken.
 * key (borrowed until fr_tls_close; NULL: no resumption) names what the session may be resumed
 * for: the sessions the server gives are kept under it, and the last one is offered. It must
 * say everything that decides the checks (host, port, ca, verify): a session is resumed
 * without checking the certificate again. Returns 0, or -1 (out of memory, or a host OpenSSL
 * cannot check). */
int fr_https_open(fr_tls_t *t, fr_https_t *h, fr_tls_ctx_t *ctx, const char *host, int verify,
                  const char *key);

/* Why the handshake of t failed, into buf: "certificate verify failed: <OpenSSL's reason>"
 * when the chain or the name did not check out, else "tls handshake failed: <reason>".
 * Call it right after fr_tls_read returned FR_TLS_ERROR (the reason is this thread's last
 * OpenSSL error). */
void fr_https_why(const fr_tls_t *t, char *buf, size_t len);

#endif
