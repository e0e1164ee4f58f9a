/* --tls: the bench's connections over TLS. Each connection has an OpenSSL client on two memory
 * BIOs, so it stays on the libuv stream it has (no socket BIO, no second event loop):
 *
 *   socket ──ciphertext──► fr_btls_input ──► fr_btls_read ──plaintext──► the SSE / WS / answer
 *   request, pong, close ──fr_btls_write──► fr_btls_take ──ciphertext──► socket
 *
 * The client offers ALPN http/1.1 and checks the server's certificate only with --cacert (the
 * certificate must then name the host: 127.0.0.1 or localhost). The context is made on first
 * use in each process (children make their own after the fork). */
#ifndef FR_BENCH_TLS_H
#define FR_BENCH_TLS_H

#include <stddef.h>
#include <sys/types.h>

#include "bench.h"

typedef struct ssl_st SSL;

/* A client for the server in opts; NULL (with the reason on stderr, once) when the context
 * cannot be made. */
SSL *fr_btls_new(const fr_opts_t *o);
void fr_btls_free(SSL *ssl);

/* Ciphertext from the socket. */
void fr_btls_input(SSL *ssl, const char *p, size_t n);
/* Drives the handshake: 1 when it is done, 0 while it waits for the server, -1 when it failed
 * (why: a static string from OpenSSL). */
int fr_btls_handshake(SSL *ssl, const char **why);
/* Plaintext: > 0 bytes in buf, 0 when nothing more can be read now, -1 when the server
 * closed the session or it failed. */
ssize_t fr_btls_read(SSL *ssl, char *buf, size_t cap);
/* Encrypts n bytes; the records wait for fr_btls_take. 0 or -1. */
int fr_btls_write(SSL *ssl, const char *p, size_t n);
/* Up to cap bytes of ciphertext waiting to be sent, copied into buf; 0 when none. */
size_t fr_btls_take(SSL *ssl, char *buf, size_t cap);

#endif
