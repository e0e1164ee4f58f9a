/* A growable byte buffer that owns its bytes: responses, envelopes, metrics pages, request
 * pieces. A zeroed fr_buf_t ({0}) is an empty buffer; after any put, p is followed by
 * a NUL byte that len does not count, so the contents can be read as a C string when they
 * hold no NUL of their own. */
#ifndef FR_BUF_H
#define FR_BUF_H

#include <stddef.h>

typedef struct {
    char *p;    /* owned; NULL until something is put */
    size_t len; /* bytes held */
    size_t cap; /* bytes allocated (at least len + 1 once p is set) */
} fr_buf_t;

/* Makes room for n more bytes (and the NUL) without another allocation. */
void fr_buf_reserve(fr_buf_t *b, size_t n);
void fr_buf_put(fr_buf_t *b, const void *p, size_t n);
void fr_buf_putc(fr_buf_t *b, char c);
void fr_buf_puts(fr_buf_t *b, const char *s);
void fr_buf_printf(fr_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Hands the bytes over: returns the malloc'd, NUL-terminated contents (the caller frees them;
 * an empty buffer gives an empty string), sets *len when len is not NULL, and leaves b empty. */
char *fr_buf_take(fr_buf_t *b, size_t *len);
/* Frees the bytes and leaves b empty (and reusable). */
void fr_buf_free(fr_buf_t *b);

#endif
