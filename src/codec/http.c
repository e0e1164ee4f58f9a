#include "codec/http.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/buf.h"
#include "base/json.h"
#include "base/util.h"
#include "base/util.h"

void fr_request_reset(fr_request_t *req) {
    for (size_t i = 0; i < req->nheaders; i++) {
        free(req->headers[i].name);
        free(req->headers[i].value);
    }
    free(req->headers);
    free(req->url);
    free(req->body);
    memset(req, 0, sizeof *req);
}

/* Appends to a NUL-terminated string kept as pointer, length and capacity: llhttp hands the
 * URL, the body and each header over in as many pieces as the reads cut them into. A capacity
 * below what is allocated is safe (the buffer only grows from it). */
static void append(char **s, size_t *len, size_t *cap, const char *at, size_t n) {
    fr_buf_t b = {*s, *len, *cap};
    fr_buf_put(&b, at, n);
    *s = b.p;
    *len = b.len;
    *cap = b.cap;
}

void fr_request_append_url(fr_request_t *req, const char *at, size_t len) {
    size_t n = req->url_len, cap = req->_url_cap;
    append(&req->url, &n, &cap, at, len);
    req->url_len = (uint32_t)n; /* the caller keeps the URL under limits.headers */
    req->_url_cap = (uint32_t)cap;
}

void fr_request_append_field(fr_request_t *req, const char *at, size_t len) {
    if (req->in_value || req->nheaders == 0) {
        if (req->nheaders == req->cap_headers) {
            req->cap_headers = req->cap_headers ? req->cap_headers * 2 : 16;
            req->headers = fr_realloc(req->headers, req->cap_headers * sizeof *req->headers);
        }
        req->headers[req->nheaders].name = NULL;
        req->headers[req->nheaders].value = fr_strdup("");
        req->nheaders++;
        req->in_value = 0;
    }
    fr_header_t *h = &req->headers[req->nheaders - 1];
    /* Header strings keep no capacity: their length plus the NUL is a lower bound. */
    size_t old = h->name ? strlen(h->name) : 0, cap = h->name ? old + 1 : 0;
    append(&h->name, &old, &cap, at, len);
    for (size_t i = 0; i < old; i++)
        h->name[i] = (char)tolower((unsigned char)h->name[i]);
}

void fr_request_append_value(fr_request_t *req, const char *at, size_t len) {
    if (req->nheaders == 0)
        return;
    fr_header_t *h = &req->headers[req->nheaders - 1];
    size_t old = strlen(h->value), cap = old + 1;
    append(&h->value, &old, &cap, at, len);
    req->in_value = 1;
}

void fr_request_append_body(fr_request_t *req, const char *at, size_t len) {
    append(&req->body, &req->body_len, &req->_body_cap, at, len);
}

const char *fr_request_header(const fr_request_t *req, const char *name) {
    for (size_t i = 0; i < req->nheaders; i++) {
        if (req->headers[i].name && strcmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    }
    return NULL;
}

/* unreserved / sub-delims (RFC 3986 §2.2, 2.3): what a reg-name holds besides %HH. */
static int reg_name_char(unsigned char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("-._~!$&'()*+,;=", ch) != NULL);
}

int fr_http_host_valid(const char *s, size_t len) {
    size_t i = 0;
    if (len && s[0] == '[') {
        /* IP-literal: IPv6 or IPvFuture, checked for its alphabet only. */
        for (i = 1; i < len && s[i] != ']'; i++) {
            unsigned char ch = (unsigned char)s[i];
            if (!reg_name_char(ch) && ch != ':')
                return 0;
        }
        if (i == len || i == 1)
            return 0;
        i++;
    } else {
        for (; i < len && s[i] != ':'; i++) {
            unsigned char ch = (unsigned char)s[i];
            if (ch == '%') {
                if (i + 2 >= len || fr_hex_value(s[i + 1]) < 0 ||
                    fr_hex_value(s[i + 2]) < 0)
                    return 0;
                i += 2;
            } else if (!reg_name_char(ch)) {
                return 0;
            }
        }
    }
    if (i == len)
        return 1;
    if (s[i] != ':' || len - i - 1 > 5)
        return 0;
    for (i++; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
    }
    return 1;
}

/* "http://" or "https://" (any case): the length of the prefix, else 0. */
static size_t absolute_prefix(const char *url, size_t len) {
    if (len >= 7 && strncasecmp(url, "http://", 7) == 0)
        return 7;
    if (len >= 8 && strncasecmp(url, "https://", 8) == 0)
        return 8;
    return 0;
}

int fr_request_check_host(fr_request_t *req, const char **msg) {
    fr_header_t *host = NULL;
    for (size_t i = 0; i < req->nheaders; i++) {
        if (!req->headers[i].name || strcmp(req->headers[i].name, "host") != 0)
            continue;
        if (host) {
            *msg = "the request has more than one Host header";
            return -1;
        }
        host = &req->headers[i];
    }
    if (!host && req->http_major == 1 && req->http_minor >= 1) {
        *msg = "an HTTP/1.1 request needs a Host header";
        return -1;
    }
    if (host && !fr_http_host_valid(host->value, strlen(host->value))) {
        *msg = "the Host header is not a valid host[:port]";
        return -1;
    }
    size_t skip = req->url ? absolute_prefix(req->url, req->url_len) : 0;
    if (!skip)
        return 0;
    /* The target's authority wins over the Host header (RFC 9112 §3.2.2). */
    const char *auth = req->url + skip;
    size_t alen = strcspn(auth, "/?#");
    if (alen == 0 || !fr_http_host_valid(auth, alen)) {
        *msg = "the request target's authority is not a valid host[:port]";
        return -1;
    }
    if (host) {
        free(host->value);
        host->value = fr_strndup(auth, alen);
    }
    const char *rest = auth + alen;
    size_t rlen = req->url_len - skip - alen;
    int slash = rlen == 0 || rest[0] != '/';
    char *url = fr_malloc(rlen + 2);
    if (slash)
        url[0] = '/';
    memcpy(url + slash, rest, rlen);
    url[rlen + slash] = '\0';
    free(req->url);
    req->url = url;
    req->url_len = (uint32_t)(rlen + slash);
    req->_url_cap = (uint32_t)(rlen + 2);
    return 0;
}

const char *fr_http_status_text(int status) {
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

char *fr_http_error_body(const char *msg, size_t *len) {
    fr_buf_t b = {0};
    fr_buf_puts(&b, "{\"error\":");
    /* Messages may quote client bytes: the escaper keeps the body valid JSON. */
    fr_json_put_string(&b, msg, strlen(msg));
    fr_buf_putc(&b, '}');
    return fr_buf_take(&b, len);
}
