/* What fuzz_tls (the server side of codec/tls_mem.c) and fuzz_tls_client (its client side)
 * share: one side of a session fed bytes the way the connections feed it, and the checks every
 * read must pass. Header-only and static, like fuzz_common.h. */
#ifndef FR_FUZZ_TLS_SIDE_H
#define FR_FUZZ_TLS_SIDE_H

#include <string.h>

#include "base/buf.h"
#include "codec/tls_mem.h"
#include "fuzz_common.h"

typedef struct {
    fr_tls_t tls;
    fr_buf_t out;  /* ciphertext this side wrote, not yet given to the other */
    fr_buf_t got;  /* plaintext this side read */
    ssize_t last;  /* the last fr_tls_read result */
    int dead;      /* failed or saw close_notify: no call may succeed */
    void (*on_error)(fr_tls_t *t); /* called when a read fails, or NULL */
    char plain[FR_TLS_RECORD];
} fz_side_t;

/* One read of n bytes, through as many fr_tls_read calls as it takes: results in range, the
 * input all used or the read failed, no plaintext before the handshake or after the end. */
static inline void fz_side_read(fz_side_t *s, const char *bytes, size_t n) {
    const char *in = bytes;
    size_t left = n;
    for (int calls = 0;; calls++) {
        fz_expect(calls < 100000, "fr_tls_read does not stop");
        size_t before = left;
        ssize_t r = fr_tls_read(&s->tls, &in, &left, s->plain, sizeof s->plain, &s->out);
        fz_expect(left <= before && in == bytes + (n - left), "input pointer and count disagree");
        fz_expect(r == FR_TLS_AGAIN || r == FR_TLS_CLOSED || r == FR_TLS_ERROR ||
                      (r > 0 && (size_t)r <= sizeof s->plain),
                  "fr_tls_read returned %zd", r);
        s->last = r;
        if (r > 0) {
            fz_expect(s->tls.ready, "plaintext before the handshake finished");
            fz_expect(!s->dead, "plaintext after the session ended");
            fr_buf_put(&s->got, s->plain, (size_t)r);
            continue;
        }
        if (r == FR_TLS_AGAIN)
            fz_expect(left == 0, "FR_TLS_AGAIN with %zu bytes unread", left);
        if (r == FR_TLS_ERROR) {
            fz_expect(s->tls.failed, "an error without the failed bit");
            if (s->on_error)
                s->on_error(&s->tls);
        }
        if (r < 0)
            s->dead = 1;
        return;
    }
}

/* Delivers bytes in reads of one length, which the input chooses (one byte). */
static inline void fz_side_feed(fz_side_t *s, fz_reader_t *r, const char *bytes, size_t n) {
    size_t step = (size_t)fz_u8(r) * 8 + 1;
    while (n > 0 && !s->dead) {
        size_t k = step < n ? step : n;
        fz_side_read(s, bytes, k);
        bytes += k;
        n -= k;
    }
}

/* Errors are final: nothing works on a session that failed. */
static inline void fz_side_check_final(fz_side_t *s) {
    if (!s->tls.failed)
        return;
    const char *in = "x";
    size_t n = 1;
    fz_expect(fr_tls_read(&s->tls, &in, &n, s->plain, sizeof s->plain, &s->out) == FR_TLS_ERROR,
              "a read succeeded after an error");
    struct iovec v = {(void *)"x", 1};
    size_t before = s->out.len;
    fz_expect(fr_tls_write(&s->tls, &v, 1, &s->out) == -1, "a write succeeded after an error");
    fr_tls_shutdown(&s->tls, &s->out);
    fz_expect(s->out.len == before, "bytes written after an error");
}

static inline void fz_side_free(fz_side_t *s) {
    fr_tls_close(&s->tls);
    fr_buf_free(&s->out);
    fr_buf_free(&s->got);
}

#endif
