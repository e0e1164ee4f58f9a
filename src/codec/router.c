#include "codec/router.h"

#include <stdlib.h>
#include <string.h>

#include "codec/url.h"
#include "base/util.h"

static int valid_name(const char *s, size_t n) {
    if (n == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return 0;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return 0;
    }
    return 1;
}

int fr_pattern_compile(const char *source, fr_pattern_t *out, const char **err) {
    memset(out, 0, sizeof *out);
    size_t len = strlen(source);
    if (len == 0 || source[0] != '/') {
        *err = "pattern must start with '/'";
        return -1;
    }
    size_t nsegs = 0, nparams = 0;
    for (size_t i = 1; i < len; i++)
        nsegs += source[i] == '/';
    if (len > 1)
        nsegs++;
    out->source = fr_strdup(source);
    out->segs = fr_calloc(nsegs ? nsegs : 1, sizeof *out->segs);
    size_t start = 1;
    for (size_t i = 1; i <= len && len > 1; i++) {
        if (i < len && source[i] != '/')
            continue;
        const char *seg = source + start;
        size_t n = i - start;
        fr_segment_t *s = &out->segs[out->nsegs++];
        if (n > 0 && seg[0] == ':') {
            if (!valid_name(seg + 1, n - 1)) {
                *err = "parameter names are letters, digits and '_' after ':'";
                goto fail;
            }
            s->is_param = 1;
            s->text = fr_strndup(seg + 1, n - 1);
            for (size_t k = 0; k + 1 < out->nsegs; k++) {
                if (out->segs[k].is_param && strcmp(out->segs[k].text, s->text) == 0) {
                    *err = "parameter name used twice";
                    goto fail;
                }
            }
            if (++nparams > FR_MAX_PARAMS) {
                *err = "too many parameters";
                goto fail;
            }
        } else {
            s->text = fr_strndup(seg, n);
        }
        start = i + 1;
    }
    return 0;
fail:
    fr_pattern_free(out);
    return -1;
}

void fr_pattern_free(fr_pattern_t *p) {
    for (size_t i = 0; i < p->nsegs; i++)
        free(p->segs[i].text);
    free(p->segs);
    free(p->source);
    memset(p, 0, sizeof *p);
}

void fr_params_free(fr_param_t *params, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(params[i].value);
        params[i].value = NULL;
    }
}

int fr_pattern_match(const fr_pattern_t *p, const char *path, size_t len, fr_param_t *params,
                     size_t *nparams) {
    *nparams = 0;
    if (len == 0 || path[0] != '/')
        return 0;
    size_t nsegs = 0;
    for (size_t i = 1; i < len; i++)
        nsegs += path[i] == '/';
    if (len > 1)
        nsegs++;
    if (nsegs != p->nsegs)
        return 0;
    size_t start = 1, k = 0;
    for (size_t i = 1; i <= len && len > 1; i++) {
        if (i < len && path[i] != '/')
            continue;
        const char *seg = path + start;
        size_t n = i - start;
        const fr_segment_t *s = &p->segs[k++];
        if (s->is_param) {
            if (n == 0)
                goto nomatch;
            char *v = fr_malloc(n + 1);
            if (fr_url_decode(seg, n, v, 0) < 0) {
                free(v);
                fr_params_free(params, *nparams);
                *nparams = 0;
                return -1;
            }
            params[*nparams].name = s->text;
            params[(*nparams)++].value = v;
        } else if (strlen(s->text) != n || memcmp(s->text, seg, n) != 0) {
            goto nomatch;
        }
        start = i + 1;
    }
    return 1;
nomatch:
    fr_params_free(params, *nparams);
    *nparams = 0;
    return 0;
}
