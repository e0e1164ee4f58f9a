/* Static files for example pages: GET/HEAD under a route's directory, never outside it. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/app.h"
#include "codec/url.h"
#include "base/util.h"

#define FR_STATIC_MAX (16u << 20)

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

void fr_app_static(fr_exchange_t *x, const fr_route_t *route, const char *rel, size_t rel_len) {
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
    char full[PATH_MAX];
    int n = snprintf(full, sizeof full, "%s%s%s", route->path, decoded[0] == '/' ? "" : "/", decoded);
    free(decoded);
    if (n < 0 || (size_t)n >= sizeof full - 16) {
        fr_exchange_respond_error(x, 414, "path too long");
        return;
    }
    struct stat st;
    if (stat(full, &st) == 0 && S_ISDIR(st.st_mode)) {
        size_t l = strlen(full);
        snprintf(full + l, sizeof full - l, "%sindex.html", full[l - 1] == '/' ? "" : "/");
    }
    /* A symlink inside the directory must not lead out of it either. */
    char real[PATH_MAX];
    size_t rootlen = strlen(route->path);
    if (!realpath(full, real) || strncmp(real, route->path, rootlen) != 0 ||
        (real[rootlen] != '/' && real[rootlen] != '\0')) {
        fr_exchange_respond_error(x, 404, "not found");
        return;
    }
    int fd = open(real, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > FR_STATIC_MAX) {
        if (fd >= 0)
            close(fd);
        fr_exchange_respond_error(x, 404, "not found");
        return;
    }
    /* Example pages are small; reading them on the loop is simpler than a thread pool hop. */
    size_t size = (size_t)st.st_size, got = 0;
    char *body = fr_malloc(size ? size : 1);
    while (got < size) {
        ssize_t r = read(fd, body + got, size - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (got != size) {
        free(body);
        fr_exchange_respond_error(x, 500, "could not read the file");
        return;
    }
    fr_exchange_respond(x, 200, content_type(real), "Cache-Control: no-cache\r\n", body, size);
    free(body);
}
