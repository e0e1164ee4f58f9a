/* HTTP requests as parsed from llhttp callbacks, and response building. */
#ifndef FR_HTTP_H
#define FR_HTTP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *name;  /* owned, lower-case */
    char *value; /* owned */
} fr_header_t;

/* Sizes of the request line and headers are 32 bits: their limit (limits.headers) is far
 * below, and every connection carries this struct. Filled by the HTTP layer from llhttp's
 * callbacks; read-only to everyone else. Fields starting with _ are private. */
typedef struct {
    char *url;           /* owned, NUL-terminated */
    fr_header_t *headers; /* owned array */
    char *body;          /* owned, NUL-terminated */
    size_t body_len;
    size_t _body_cap;    /* bytes allocated for body */
    uint32_t url_len, _url_cap;
    uint32_t nheaders, cap_headers;
    uint32_t header_bytes; /* request line and headers so far, for the size limit */
    char method[16];
    uint8_t http_major, http_minor;
    uint8_t keep_alive;
    uint8_t in_value;    /* llhttp hands names and values over in pieces */
} fr_request_t;

void fr_request_reset(fr_request_t *req);
void fr_request_append_url(fr_request_t *req, const char *at, size_t len);
void fr_request_append_field(fr_request_t *req, const char *at, size_t len);
void fr_request_append_value(fr_request_t *req, const char *at, size_t len);
void fr_request_append_body(fr_request_t *req, const char *at, size_t len);
/* The value of a header (name in lower case), or NULL. */
const char *fr_request_header(const fr_request_t *req, const char *name);

/* RFC 9112 §3.2: checks the request's Host once its headers are complete (method and version
 * set). A repeated Host, an invalid one, or none on HTTP/1.1 returns -1 with *msg (answer 400;
 * HTTP/1.0 may omit it). An absolute-form target ("http://a.example/p?q", §3.2.2) is turned
 * into its origin form ("/p?q") and its authority replaces the Host value, so everything after
 * sees one host and one path. Returns 0 otherwise. */
int fr_request_check_host(fr_request_t *req, const char **msg);

/* 1 when s[0..len) is a valid Host value: uri-host [":" port] (RFC 3986 §3.2.2, 3.2.3). */
int fr_http_host_valid(const char *s, size_t len);

const char *fr_http_status_text(int status);

/* Writes {"error":"<msg>"} with JSON escaping (base/json.h) into a malloc'd string. */
char *fr_http_error_body(const char *msg, size_t *len);

#endif
