/* Route patterns: "/rooms/:room/events" — literal segments and named ":param" segments. */
#ifndef FR_ROUTER_H
#define FR_ROUTER_H

#include <stddef.h>

typedef struct {
    char *text;   /* owned: the literal, or the parameter name */
    int is_param;
} fr_segment_t;

typedef struct {
    char *source;          /* owned copy of the pattern as written */
    fr_segment_t *segs;    /* owned */
    size_t nsegs;
} fr_pattern_t;

typedef struct {
    const char *name; /* borrowed from the pattern */
    char *value;      /* owned, decoded */
} fr_param_t;

#define FR_MAX_PARAMS 16

/* Returns 0, or -1 with a static *err for a pattern that does not start with '/', has an empty
 * or malformed parameter name, repeats a name or has more than FR_MAX_PARAMS parameters. */
int fr_pattern_compile(const char *source, fr_pattern_t *out, const char **err);
void fr_pattern_free(fr_pattern_t *p);

/* Matches a raw (still percent-encoded) path. Returns 1 and fills params (caller frees each
 * value with fr_params_free) on a match, 0 when it does not match, -1 on bad encoding. */
int fr_pattern_match(const fr_pattern_t *p, const char *path, size_t len, fr_param_t *params,
                     size_t *nparams);
void fr_params_free(fr_param_t *params, size_t n);

#endif
