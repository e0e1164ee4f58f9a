#include "codec/http.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/json.h"
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
