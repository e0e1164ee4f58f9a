/* URL pieces: percent-decoding and splitting a request target. Pure codec. */
#ifndef FR_URL_H
#define FR_URL_H

#include <stddef.h>

/* Decodes %XX escapes (and '+' as a space when plus_is_space) from src into out, which holds
 * at least len+1 bytes; NUL-terminates. Returns the decoded length, or -1 on a malformed
 * escape or an encoded NUL. */
long fr_url_decode(const char *src, size_t len, char *out, int plus_is_space);

/* Splits "path?query" at the first '?': *path_len and the query (NULL when absent). */
void fr_url_split(const char *url, size_t len, size_t *path_len, const char **query,
                  size_t *query_len);

/* Calls fn for each key=value pair of a query string, both decoded ('+' is a space). Returns 0,
 * or -1 on malformed encoding (fn may have been called for earlier pairs). */
typedef void (*fr_query_cb)(void *ctx, const char *key, size_t klen, const char *val,
                            size_t vlen);
int fr_url_each_query(const char *query, size_t len, fr_query_cb fn, void *ctx);

/* 1 when any path segment, once decoded, is "." or ".." or holds a '/' or '\\': such a path
 * could leave a static directory. */
int fr_url_path_escapes(const char *path, size_t len);

#endif
