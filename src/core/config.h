/* The app's settings, read from the table `freshet.app{...}` built (and validated key by key)
 * in lua/freshet/app.lua. */
#ifndef FR_CONFIG_H
#define FR_CONFIG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *name;     /* owned; "" for the built-in default of streams without a tier */
    double rate;    /* tokens per second; 0 = no rate limit */
    double burst;   /* bucket size */
    size_t queue;   /* out-queue high-water mark (events): past it, low priorities drop */
    size_t bytes;   /* out-queue byte budget, counting what the socket still holds */
    size_t lag;     /* events behind (queued + dropped) before the stream is closed */
} fr_tier_t;

/* What a stream does with a topic's events once its out-queue is past its budget. */
typedef enum {
    FR_SLOW_DROP = 0,     /* drop telemetry, then normal; critical never silently */
    FR_SLOW_CONFLATE = 1, /* keep only the newest unsent event of the topic */
    FR_SLOW_DISCONNECT = 2 /* end the stream with retry: so it resumes from replay */
} fr_slow_t;

/* "drop" | "conflate" | "disconnect" → 0 and *out; else -1. */
int fr_slow_parse(const char *s, fr_slow_t *out);

/* Read-only once a VM has read it from the app file: the worker keeps a copy for the
 * process's life (start_config), and every layer borrows it. */
typedef struct {
    char host[256];
    int port;
    uint64_t heartbeat_ms;
    uint64_t retry_ms;
    size_t replay_events;
    uint64_t replay_ms;
    char *broker;         /* owned */
    char *redis;          /* owned: the app's Redis for freshet.redis; NULL: the broker's */
    fr_tier_t *tiers;     /* owned array */
    size_t ntiers;
    char **cors;          /* owned array of allowed origins; "*" allows any */
    size_t ncors;
    size_t max_body;
    size_t max_headers;
    size_t max_header_lines; /* header lines in one request (limits.header_lines) */
    double streams_at;    /* fraction of the descriptor limit past which new streams get 503 */
    uint64_t budget;      /* Lua instructions per hook call */
    size_t memory_kb;     /* a VM's heap limit; a hook past it is stopped (0: none) */
    int jit;
    int workers;          /* worker threads; 0 = one per core ("auto") */
    fr_tier_t default_tier; /* budgets for streams whose route names no tier */
    uint64_t header_timeout_ms; /* a request must be complete within this (else 408) */
    uint64_t idle_timeout_ms;   /* keep-alive connections idle this long are closed */
    /* A peer that leaves sent bytes unacknowledged this long (or does not answer keep-alive
     * probes for this long) is dead: its connection is reset. 0: twice the heartbeat. */
    uint64_t ack_timeout_ms;
    uint64_t hook_timeout_ms;   /* a hook that waits (network, sleep) ends with 504 after this */
    /* freshet.http.request: a response's size, calls in flight per worker, calls per hook,
     * idle keep-alive connections kept per worker and backend host. */
    size_t backend_response;
    unsigned backend_calls;
    unsigned backend_idle;
    unsigned calls_per_hook;
    /* freshet.redis: calls in flight per worker, and each call's deadline. */
    unsigned redis_calls;
    uint64_t redis_timeout_ms;
    uint64_t drain_ms;          /* SIGTERM spreads stream closes over this window */
    uint64_t poll_timeout_ms;   /* a long-poll with nothing to send answers 204 after this */
    int log_json;               /* log lines as JSON objects */
    /* admin = "host:port": /health, /readyz and /metrics on a listener of their own, and
     * nowhere else. admin_port < 0: none. */
    char admin_host[256];
    int admin_port;
    /* access_log = {path, format}: one line per request and per stream; NULL: off. */
    char *access_log;           /* owned: a file path, or "stderr" */
    int access_log_json;
    int log_level;              /* -1: as the command line says */
    char *tls_cert;   /* owned: PEM certificate chain (resolved path); NULL: cleartext HTTP */
    char *tls_key;    /* owned: its PEM private key; set exactly when tls_cert is */
    int h2c;          /* a cleartext listener also speaks HTTP/2 with prior knowledge */
    unsigned h2_streams; /* HTTP/2: concurrent streams per connection (SETTINGS) */
    unsigned h2_streams_per_client; /* HTTP/2: open streams per client address (process),
                                     * over all its connections; 0: 4 × h2_streams */
} fr_config_t;

void fr_config_defaults(fr_config_t *cfg);
void fr_config_free(fr_config_t *cfg);
/* Deep copy: dst owns its own strings and arrays. */
void fr_config_copy(fr_config_t *dst, const fr_config_t *src);

/* Parses "host:port" (IPv4 or [IPv6]:port); returns 0 or -1. */
int fr_config_parse_listen(const char *s, char *host, size_t hostlen, int *port);

/* timeouts.ack in force: the setting, or twice the heartbeat. */
uint64_t fr_config_ack_ms(const fr_config_t *cfg);

const fr_tier_t *fr_config_tier(const fr_config_t *cfg, const char *name);
/* 1 when `origin` may receive CORS headers. */
int fr_config_cors_allows(const fr_config_t *cfg, const char *origin);

#endif
