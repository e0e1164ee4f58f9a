/* TLS 1.3 application records without OpenSSL's SSL object: what an established server session
 * runs on once it is idle (codec/tls_mem.c hands its traffic secrets over and frees the SSL,
 * which alone costs about 7.6 KB per connection). RFC 8446 §5.2 (record protection), §5.3
 * (per-record nonce), §7.1/§7.3 (keys from secrets), §4.6.3 (KeyUpdate).
 *
 *   ciphertext ──fr_tls_rec_read──► plaintext      (records may arrive cut anywhere)
 *   plaintext  ──fr_tls_rec_write─► ciphertext     (gathered into records of ≤ 16 KB)
 *
 * The state is one AEAD context per direction (keyed once), the two traffic secrets (kept for
 * KeyUpdate), the IVs and sequence numbers. A record that arrives in pieces is gathered in a
 * heap buffer that exists only while it is incomplete: an idle session holds no buffer.
 *
 * What the peer may send: application data, alerts (close_notify ends the session, any other
 * fails it) and KeyUpdate, one per record and alone in it (RFC 8446 §5.1 has it end a record;
 * a KeyUpdate split across records, or any other handshake message, fails the session: the
 * server offers no post-handshake authentication and TLS 1.3 has no renegotiation). */
#ifndef FR_TLS_RECORDS_H
#define FR_TLS_RECORDS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "base/buf.h"
#include "codec/tls_mem.h"

/* The TLS 1.3 cipher suites this layer speaks. */
typedef enum {
    FR_TLS_AES_128_GCM_SHA256,
    FR_TLS_AES_256_GCM_SHA384,
    FR_TLS_CHACHA20_POLY1305_SHA256,
} fr_tls_suite_t;

typedef struct fr_tls_rec fr_tls_rec_t;

/* The suite of a TLS 1.3 cipher id (0x1301..0x1303, IANA), or -1. */
int fr_tls_suite_of(unsigned id);
/* The length of the suite's traffic secrets (its hash: 32 or 48 bytes). */
size_t fr_tls_suite_secret_len(fr_tls_suite_t s);

/* A record layer whose reads are protected with read_secret from record read_seq on, and
 * writes with write_secret from write_seq on (each fr_tls_suite_secret_len bytes, copied).
 * Returns NULL when OpenSSL cannot set the keys up. */
fr_tls_rec_t *fr_tls_rec_new(fr_tls_suite_t suite, const unsigned char *read_secret,
                             uint64_t read_seq, const unsigned char *write_secret,
                             uint64_t write_seq);
void fr_tls_rec_free(fr_tls_rec_t *r);

/* As fr_tls_read (tls_mem.h): > 0 plaintext bytes in buf, FR_TLS_AGAIN once every input byte is
 * taken, FR_TLS_CLOSED after close_notify, FR_TLS_ERROR (fr_tls_rec_why says why; a fatal alert
 * for the peer is appended to out). A KeyUpdate answer, when asked for, goes to out. */
ssize_t fr_tls_rec_read(fr_tls_rec_t *r, const char **in, size_t *n, char *buf, size_t cap,
                        fr_buf_t *out);
/* Encrypts bufs[0..nbufs) into records appended to out. Returns 0, or -1 (failed session). */
int fr_tls_rec_write(fr_tls_rec_t *r, const struct iovec *bufs, size_t nbufs, fr_buf_t *out);
/* Appends a KeyUpdate to out and moves the writing side to the next traffic secret (§4.6.3);
 * request: the peer is asked to update its own. Returns 0, or -1 (failed session). */
int fr_tls_rec_key_update(fr_tls_rec_t *r, int request, fr_buf_t *out);
/* Appends a close_notify alert to out, unless the session failed. */
void fr_tls_rec_close_notify(fr_tls_rec_t *r, fr_buf_t *out);

/* What a switched session's callers may still ask: the protocol ALPN chose (at most
 * FR_TLS_REC_ALPN bytes; set returns -1 when longer) and the suite's name. */
#define FR_TLS_REC_ALPN 15
int fr_tls_rec_set_alpn(fr_tls_rec_t *r, const unsigned char *p, unsigned len);
const unsigned char *fr_tls_rec_alpn(const fr_tls_rec_t *r, unsigned *len);
const char *fr_tls_rec_cipher(const fr_tls_rec_t *r);

/* Why the last failure of this thread's record layers happened ("bad record mac"), or NULL. */
const char *fr_tls_rec_why(void);
/* The bytes the structure itself takes (for the memory figures). */
size_t fr_tls_rec_size(void);

#endif
