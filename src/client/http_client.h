/* The backend HTTP client: HTTP/1.1 requests from a worker to the app's own services
 * (freshet.http.request), on the worker's loop, never blocking it.
 *
 *   fr_hclient_request ──► URL ─► DNS (libuv; numeric hosts skip it) ─► a pooled keep-alive
 *        connection to host:port, or a new one ─► (https: a TLS handshake, the certificate
 *        checked) ─► request bytes ─► response parsed with llhttp (client/http_response.h)
 *        ─► cb(ctx, res, NULL) ─► the connection back to the pool
 *                                 └─ any failure or the deadline ─► cb(ctx, NULL, "why")
 *
 * https:// runs TLS 1.2 or 1.3 (codec/tls_mem.h, contexts in client/https.h) over the same
 * connections: SNI and ALPN http/1.1, the certificate checked against the system's store or a
 * CA file, and its name or address against the URL's host, unless the request says not to. A
 * connection is pooled under its scheme, host, port and trust, so an https connection never
 * carries a cleartext call, nor a call to another host or with stricter checks.
 *
 * One client per worker (it is bound to its loop), shared by every VM the worker runs, so
 * pooled connections outlive reloads. The callback never runs inside fr_hclient_request. */
#ifndef FR_HTTP_CLIENT_H
#define FR_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct fr_hclient_s fr_hclient_t;
typedef struct fr_hcall_s fr_hcall_t;

/* A zero max_response, max_in_flight or idle_ms takes its default below; a zero
 * max_idle_per_host keeps no connection (each closes after its call). NULL limits: every
 * default. */
typedef struct {
    size_t max_response;         /* bytes of head plus body a response may have (interim 1xx
                                  * responses and chunk framing count too) */
    unsigned max_in_flight;      /* calls at once per worker; more are refused at once */
    unsigned max_idle_per_host;  /* keep-alive connections kept per host:port */
    uint64_t idle_ms;            /* a pooled connection unused this long is closed */
} fr_hclient_limits_t;

#define FR_HCLIENT_DEFAULT_MAX_RESPONSE (8u << 20)
#define FR_HCLIENT_DEFAULT_MAX_IN_FLIGHT 256u
#define FR_HCLIENT_DEFAULT_IDLE_PER_HOST 8u
#define FR_HCLIENT_DEFAULT_IDLE_MS 30000u
/* A request body larger than this is refused ("body too large"): it goes in one write. */
#define FR_HCLIENT_MAX_BODY (1u << 30)

typedef struct {
    const char *name, *value;
    size_t name_len, value_len;
} fr_hheader_t;

typedef struct {
    const char *method;           /* GET, POST, …: an HTTP token */
    const char *url;              /* http[s]://host[:port][/path][?query] */
    const fr_hheader_t *headers;  /* more header lines; Host, Content-Length, Connection and
                                   * Transfer-Encoding are the client's (User-Agent: freshet
                                   * unless one is given) */
    size_t nheaders;
    const char *body;             /* NULL: none */
    size_t body_len;
    uint64_t timeout_ms;          /* the whole call: DNS, connect, the TLS handshake, send and
                                   * the response; 0: no deadline */
    const char *ca_file;          /* https: trust the certificates of this PEM file instead of
                                   * the system's (read once per client); NULL: the system's */
    int insecure;                 /* https: take any certificate for any name (tests only) */
} fr_hrequest_t;

/* A response, borrowed for the callback's duration. Header names are lower-case. */
typedef struct {
    int status;
    const fr_hheader_t *headers;
    size_t nheaders;
    const char *body;
    size_t body_len;
} fr_hresponse_t;

/* err is NULL with a response, else a short text (borrowed for the callback's duration) a
 * script may compare: "timeout", "connection refused", "connection reset", "connection closed",
 * "host not found", "response too large", "invalid response", "shutting down",
 * "certificate verify failed: <why>" (the chain or the host name did not check out),
 * "tls handshake failed: <why>", "tls error: <why>", or another libuv error's text. */
typedef void (*fr_hcall_cb)(void *ctx, const fr_hresponse_t *res, const char *err);

fr_hclient_t *fr_hclient_new(uv_loop_t *loop, const fr_hclient_limits_t *limits);

/* Closes the pool; calls in flight are answered "shutting down" first. The memory goes once
 * libuv has closed every handle (the loop must run on). */
void fr_hclient_close(fr_hclient_t *c);

/* Starts a call. Returns 0 with *call set (cb comes later, once, unless the call is
 * cancelled), or -1 with *err set when it cannot start (a URL that is not http://host…, a
 * method or header with bytes HTTP does not allow, too many calls in flight): cb never
 * comes then. The request is copied: req and what it points to may go once this returns.
 * *call is valid until cb has returned or fr_hcall_cancel was called; call or err may be
 * NULL. The -1 texts are static, or valid until the next call on c:
 *   "url must start with http:// or https://",
 *   "url has a space or a control character", "url may not have user info",
 *   "url has an invalid host", "url has an invalid port", "invalid method",
 *   "method CONNECT is not supported", "invalid header name", "invalid header value",
 *   "header Host is not allowed" (and Content-Length, Connection, Transfer-Encoding),
 *   "body too large", "too many calls in flight", "shutting down", "invalid request",
 *   "cannot read the ca file <path>: <why>", "the ca file <path> holds no certificate …",
 *   "too many ca files …". 
 * An idempotent call (GET, HEAD, PUT, DELETE, OPTIONS) that finds its pooled connection
 * closed by the server before any response byte goes once more, on a new connection. */
int fr_hclient_request(fr_hclient_t *c, const fr_hrequest_t *req, fr_hcall_cb cb, void *ctx,
                       fr_hcall_t **call, const char **err);

/* Drops a call in flight: cb never comes; its connection is closed rather than reused.
 * Inside the call's own cb it does nothing. */
void fr_hcall_cancel(fr_hcall_t *call);

/* Counters for /metrics: calls started, answered with an error, of which "timeout", that
 * took a pooled connection, sent again after a stale one; calls and pooled connections now. */
typedef struct {
    unsigned long calls, failures, timeouts, reused, in_flight, idle, retries;
} fr_hclient_stats_t;
void fr_hclient_stats(const fr_hclient_t *c, fr_hclient_stats_t *out);

#endif
