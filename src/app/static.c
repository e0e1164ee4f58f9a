/* Static files: GET/HEAD under a route's directory, never outside it, without a blocking call
 * on the worker's loop.
 *
 *   request ──► resolve (thread pool: stat, realpath, open, fstat)
 *           ──► validators: ETag (inode, size, mtime in ns) and Last-Modified
 *           ──► 304 when If-None-Match / If-Modified-Since says the client has it
 *           ──► head, then the file in chunks: uv_fs_read ──► sink write ──► next read
 *
 * One chunk is read at a time and the next only once the sink has taken the last, so a large
 * file costs one chunk of memory and a slow client slows only its own reads. While the answer
 * is under way the request is the exchange's writer: a client that leaves is noticed, and the
 * request frees itself once nothing of its own (a read, a write) is pending. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/app.h"
#include "base/util.h"
#include "codec/http_date.h"
#include "codec/url.h"

#define FR_STATIC_CHUNK (256u << 10)

typedef struct {
    fr_exchange_t *x;     /* held until free */
    uv_loop_t *loop;
    uv_work_t work;
    uv_fs_t fs;
    /* Copied from the route: a reload may retire its VM while a file is sent. */
    char *root;           /* owned: the directory's real path */
    int64_t max_age;
    int immutable;
    char *rel;            /* owned: the decoded path under root */
    /* What resolving found (written on the pool's thread, read after it). */
    int status;           /* 200, or 404 */
    int fd;
    struct stat st;
    char real[PATH_MAX];
    /* Sending. */
    char *buf;            /* owned: one chunk */
    uint64_t off;
    int head_only;
    unsigned busy : 1;    /* the pool or a read has the request */
    unsigned writing : 1; /* the sink holds the chunk */
    unsigned gone : 1;    /* the client left: send nothing more */
    unsigned closed : 1;  /* the sink will call nothing more */
    unsigned owning : 1;  /* the request is the exchange's writer */
} file_req_t;

static const char *content_type(const char *path) {
    static const struct {
        const char *ext, *type;
    } types[] = {{".html", "text/html; charset=utf-8"}, {".htm", "text/html; charset=utf-8"},
                 {".js", "text/javascript; charset=utf-8"}, {".mjs", "text/javascript; charset=utf-8"},
                 {".css", "text/css; charset=utf-8"}, {".json", "application/json"},
                 {".svg", "image/svg+xml"}, {".png", "image/png"}, {".jpg", "image/jpeg"},
                 {".jpeg", "image/jpeg"}, {".gif", "image/gif"}, {".ico", "image/x-icon"},
                 {".txt", "text/plain; charset=utf-8"}, {".webp", "image/webp"},
                 {".woff2", "font/woff2"}};
    const char *dot = strrchr(path, '.');
    if (dot) {
        for (size_t i = 0; i < FR_ARRAY_LEN(types); i++) {
            if (strcasecmp(dot, types[i].ext) == 0)
                return types[i].type;
        }
    }
    return "application/octet-stream";
}

/* ---- the request's life ------------------------------------------------------------------- */

static void req_free(file_req_t *r) {
    if (r->fd >= 0)
        close(r->fd); /* a regular file's close does not wait on the disk */
    if (r->owning && !r->closed)
        fr_sink_attach(&r->x->sink, NULL, NULL);
    r->x->ops->release(r->x);
    free(r->buf);
    free(r->root);
    free(r->rel);
    free(r);
}

/* Frees the request once nothing of its own is pending and the sink is done with it. */
static void req_settle(file_req_t *r) {
    if (!r->busy && !r->writing && (r->closed || !r->owning))
        req_free(r);
}

static void on_gone(void *owner, const char *reason) {
    (void)reason;
    file_req_t *r = owner;
    r->gone = 1;
}

static void on_closed(void *owner) {
    file_req_t *r = owner;
    r->gone = 1;
    r->closed = 1;
    req_settle(r);
}

static void on_data(void *owner, const char *bytes, size_t len) {
    (void)owner, (void)bytes, (void)len; /* a file answer reads nothing */
}

static const fr_sink_owner_ops_t file_owner_ops = {on_gone, on_closed, on_data};

/* Answers whole (an error, a 304) and lets the connection go on with the next request. */
static void respond_whole(file_req_t *r, int status, const char *headers, const char *msg) {
    r->owning = 0;
    fr_sink_attach(&r->x->sink, NULL, NULL);
    if (msg)
        fr_exchange_respond_error(r->x, status, msg);
    else
        fr_exchange_respond(r->x, status, NULL, headers, NULL, 0);
    req_free(r);
}

/* ---- resolving, on the pool's thread ------------------------------------------------------- */

static void resolve(uv_work_t *w) {
    file_req_t *r = FR_CONTAINER_OF(w, file_req_t, work);
    r->status = 404;
    char full[PATH_MAX];
    int n = snprintf(full, sizeof full, "%s%s%s", r->root, r->rel[0] == '/' ? "" : "/", r->rel);
    if (n < 0 || (size_t)n >= sizeof full - 16)
        return;
    struct stat st;
    if (stat(full, &st) == 0 && S_ISDIR(st.st_mode)) {
        size_t l = strlen(full);
        snprintf(full + l, sizeof full - l, "%sindex.html", full[l - 1] == '/' ? "" : "/");
    }
    /* A symlink inside the directory must not lead out of it either. */
    size_t rootlen = strlen(r->root);
    if (!realpath(full, r->real) || strncmp(r->real, r->root, rootlen) != 0 ||
        (r->real[rootlen] != '/' && r->real[rootlen] != '\0'))
        return;
    r->fd = open(r->real, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0 || fstat(r->fd, &r->st) != 0 || !S_ISREG(r->st.st_mode))
        return;
    r->status = 200;
}

/* ---- sending -------------------------------------------------------------------------------- */

static void read_next(file_req_t *r);

static void on_written(void *ctx, int status) {
    file_req_t *r = ctx;
    r->writing = 0;
    if (status < 0 || r->gone) {
        req_settle(r);
        return;
    }
    read_next(r);
}

static void on_chunk(uv_fs_t *fs) {
    file_req_t *r = FR_CONTAINER_OF(fs, file_req_t, fs);
    ssize_t got = fs->result;
    uv_fs_req_cleanup(fs);
    r->busy = 0;
    if (r->gone) {
        req_settle(r);
        return;
    }
    fr_sink_t *sink = &r->x->sink;
    if (got <= 0) {
        /* The file shrank or could not be read after the head promised its length: the
         * client must not take a short body for the whole. */
        sink->ops->abort(sink);
        req_settle(r);
        return;
    }
    r->off += (uint64_t)got;
    uv_buf_t bufs[3] = {{0}, {.base = r->buf, .len = (size_t)got}, {0}}; /* room: sink.h */
    int rc = sink->ops->write(sink, bufs + 1, 1, (size_t)got, on_written, r);
    if (rc == FR_SINK_PENDING) {
        r->writing = 1;
        return;
    }
    if (rc < 0) {
        req_settle(r);
        return;
    }
    read_next(r);
}

static void read_next(file_req_t *r) {
    fr_sink_t *sink = &r->x->sink;
    if (r->off >= (uint64_t)r->st.st_size) {
        r->owning = 0;
        sink->ops->end(sink, 1); /* the sink calls nothing more on the request */
        req_free(r);
        return;
    }
    uint64_t left = (uint64_t)r->st.st_size - r->off;
    uv_buf_t b = uv_buf_init(r->buf, (unsigned)(left < FR_STATIC_CHUNK ? left : FR_STATIC_CHUNK));
    r->busy = 1;
    if (uv_fs_read(r->loop, &r->fs, r->fd, &b, 1, (int64_t)r->off, on_chunk) != 0) {
        r->busy = 0;
        sink->ops->abort(sink);
        req_settle(r);
    }
}

/* 1 when the client's validators say it holds this version (RFC 9110 §13.2.2: If-None-Match
 * decides when present; If-Modified-Since only without it). */
static int not_modified(const fr_request_t *req, const char *etag, int64_t mtime) {
    const char *inm = fr_request_header(req, "if-none-match");
    if (inm)
        return fr_http_etag_match(inm, etag);
    const char *ims = fr_request_header(req, "if-modified-since");
    int64_t since;
    return ims && fr_http_date_parse(ims, &since) == 0 && mtime <= since;
}

static void on_resolved(uv_work_t *w, int status) {
    file_req_t *r = FR_CONTAINER_OF(w, file_req_t, work);
    r->busy = 0;
    if (r->gone || status != 0) {
        req_settle(r);
        return;
    }
    if (r->status != 200) {
        respond_whole(r, 404, NULL, "not found");
        return;
    }
    /* Strong: the same inode, size and modification time (to the nanosecond) are taken to be
     * the same bytes. */
    char etag[80], date[FR_HTTP_DATE_LEN + 1], headers[320], cache[64];
    snprintf(etag, sizeof etag, "\"%llx-%llx-%llx\"", (unsigned long long)r->st.st_ino,
             (unsigned long long)r->st.st_size,
             (unsigned long long)r->st.st_mtim.tv_sec * 1000000000ull +
                 (unsigned long long)r->st.st_mtim.tv_nsec);
    fr_http_date_format((int64_t)r->st.st_mtim.tv_sec, date);
    if (r->max_age < 0)
        snprintf(cache, sizeof cache, "no-cache");
    else
        snprintf(cache, sizeof cache, "public, max-age=%lld%s", (long long)r->max_age,
                 r->immutable ? ", immutable" : "");
    snprintf(headers, sizeof headers, "ETag: %s\r\nLast-Modified: %s\r\nCache-Control: %s\r\n",
             etag, date, cache);
    if (not_modified(&r->x->req, etag, (int64_t)r->st.st_mtim.tv_sec)) {
        respond_whole(r, 304, headers, NULL);
        return;
    }
    fr_head_t head = {200, content_type(r->real), headers, (int64_t)r->st.st_size};
    r->x->sink.ops->head(&r->x->sink, &head);
    if (r->head_only)
        r->off = (uint64_t)r->st.st_size;
    else
        r->buf = fr_malloc(FR_STATIC_CHUNK);
    read_next(r);
}

void fr_app_static(fr_app_t *app, fr_exchange_t *x, const fr_route_t *route, const char *rel,
                   size_t rel_len) {
    if (fr_url_path_escapes(rel, rel_len)) {
        fr_exchange_respond_error(x, 400, "path is not allowed");
        return;
    }
    char *decoded = fr_malloc(rel_len + 1);
    if (fr_url_decode(rel, rel_len, decoded, 0) < 0) {
        free(decoded);
        fr_exchange_respond_error(x, 400, "invalid percent-encoding in the path");
        return;
    }
    if (strlen(route->path) + rel_len + 16 >= PATH_MAX) {
        free(decoded);
        fr_exchange_respond_error(x, 414, "path too long");
        return;
    }
    file_req_t *r = fr_calloc(1, sizeof *r);
    r->x = x;
    r->loop = app->http->loop;
    r->root = fr_strdup(route->path);
    r->rel = decoded;
    r->max_age = route->max_age;
    r->immutable = route->immutable;
    r->fd = -1;
    r->head_only = strcmp(x->req.method, "HEAD") == 0;
    x->ops->hold(x);
    r->owning = 1;
    fr_sink_attach(&x->sink, &file_owner_ops, r);
    r->busy = 1;
    if (uv_queue_work(r->loop, &r->work, resolve, on_resolved) != 0) {
        r->busy = 0;
        respond_whole(r, 500, NULL, "could not read the file");
    }
}
