#include "base/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

void fr_buf_reserve(fr_buf_t *b, size_t n) {
    size_t need = b->len + n + 1;
    if (need <= b->cap)
        return;
    /* Doubling keeps a buffer built in many small puts linear in its final size. */
    size_t cap = b->cap * 2 > need ? b->cap * 2 : need;
    b->p = fr_realloc(b->p, cap);
    b->cap = cap;
}

void fr_buf_put(fr_buf_t *b, const void *p, size_t n) {
    fr_buf_reserve(b, n);
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void fr_buf_putc(fr_buf_t *b, char c) {
    fr_buf_reserve(b, 1);
    b->p[b->len++] = c;
    b->p[b->len] = '\0';
}

void fr_buf_puts(fr_buf_t *b, const char *s) {
    fr_buf_put(b, s, strlen(s));
}

static void buf_vprintf(fr_buf_t *b, const char *fmt, va_list ap) {
    /* First into the room there is; when that is short, once more into the exact size. */
    fr_buf_reserve(b, 64);
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    if (n < 0) {
        /* An encoding error in a format argument: nothing is added. */
        b->p[b->len] = '\0';
    } else if ((size_t)n < b->cap - b->len) {
        b->len += (size_t)n;
    } else {
        fr_buf_reserve(b, (size_t)n);
        vsnprintf(b->p + b->len, b->cap - b->len, fmt, again);
        b->len += (size_t)n;
    }
    va_end(again);
}

void fr_buf_printf(fr_buf_t *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(b, fmt, ap);
    va_end(ap);
}

char *fr_buf_take(fr_buf_t *b, size_t *len) {
    if (!b->p) {
        fr_buf_reserve(b, 0);
        b->p[0] = '\0';
    }
    char *p = b->p;
    if (len)
        *len = b->len;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

void fr_buf_free(fr_buf_t *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}
