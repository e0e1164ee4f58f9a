/* What every part of freshet-bench shares: the run's options, the counters a group of
 * subscribers keeps, clocks, and fatal out-of-memory.
 *
 * The counters struct is plain old data on purpose: a child process sends it to the parent as
 * raw bytes over a socketpair, and the parent adds the children's structs field by field. Both
 * ends are the same binary, so the layout matches. */
#ifndef FR_BENCH_H
#define FR_BENCH_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define FR_BENCH_VERSION "0.2.0"

/* Processes --server-pid may name (a master and its workers). */
#define FR_MAX_SERVER_PIDS 64

/* --pub-conns: at most this many publishing connections (the payload's "c" field is sized for
 * it), and at most FR_MAX_PUB_TABLE connection-topic sequence counters. */
#define FR_MAX_PUB_CONNS 1024
#define FR_MAX_PUB_TABLE (16u << 20)

typedef struct fr_opts_s {
    char host[64];             /* as given, for the Host header and messages */
    struct sockaddr_in server; /* resolved; always inside 127.0.0.0/8 */
    struct sockaddr_in pub_server; /* where the publisher connects: the server, or --pub-port */
    uint32_t subscribers;      /* -c */
    uint32_t topics;           /* -t; subscriber j reads topic j % topics */
    double rate;               /* -r: publishes per second in total; 0 = as fast as possible */
    double duration;           /* -d: seconds measured */
    double warmup;             /* --warmup: seconds published before measuring */
    double tail;               /* --tail: seconds allowed after the last publish */
    double connect_timeout;    /* --connect-timeout: seconds for the connect phase */
    uint32_t payload;          /* -s: bytes of each publish body */
    uint32_t procs;            /* --procs; 0 until main() settles it */
    uint32_t src_first;        /* --sources: first source address, host byte order; 0 = none */
    uint32_t src_count;        /* how many consecutive source addresses */
    uint32_t pipeline;         /* --pipeline: publishes in flight on each publishing connection */
    uint32_t pub_conns;        /* --pub-conns: the publisher's keep-alive connections */
    uint32_t connect_burst;    /* --connect-burst: connects in flight per process */
    int server_pid;            /* --server-pid: the first PID; 0 = no server figures */
    int server_pids[FR_MAX_SERVER_PIDS]; /* every PID given: figures are their sums */
    uint32_t nserver_pids;
    int storm;                 /* --storm: drop every stream at measure start and resume it */
    int ws;                    /* --ws: subscribers open WebSockets instead of SSE streams */
    int tls;                   /* --tls: every connection speaks TLS (tls.h) */
    char cacert[256];          /* --cacert: check the server's certificate against it; "" = no check */
    int json;                  /* --json */
    int quiet;                 /* -q: no progress line */
    char prefix[32];           /* --prefix: topic names are <prefix><k> */
    char sub_path[64];         /* --sub-path: GET <sub_path><topic> */
    char pub_path[64];         /* --pub-path: POST <pub_path><topic> */
} fr_opts_t;

/* Why a subscriber's counters grow; see docs/BENCH_TOOL.md for the exact definitions. */
typedef struct fr_counters_s {
    uint64_t conns;            /* subscriber connections this group owns */
    uint64_t ready;            /* connections whose stream started (first retry: frame) */
    uint64_t connect_failed;   /* refused, reset, timed out or non-200 before ready */
    uint64_t http_errors;      /* answered with a status other than 200 */
    uint64_t disconnects;      /* ready streams the server ended or reset during the run */
    uint64_t parse_errors;     /* malformed HTTP or chunk framing */
    uint64_t delivered;        /* measured events received (published after warmup) */
    uint64_t warmup_delivered; /* events published during warmup and received */
    uint64_t expected;         /* measured events each ready stream should receive, summed */
    uint64_t gaps;             /* events skipped: a sequence number jumped ahead by this much */
    uint64_t duplicates;       /* an event repeated the previous sequence number */
    uint64_t out_of_order;     /* an event went back further than one */
    uint64_t wrong_topic;      /* an event of another topic arrived on a stream */
    uint64_t dropped_notices;  /* "event: dropped" notices (server flow control) */
    uint64_t other_events;     /* events whose data is not a freshet-bench payload */
    uint64_t heartbeats;       /* comment lines (":") */
    uint64_t bytes;            /* bytes read from subscriber sockets */
    uint64_t reads;            /* successful reads, so events per read can be shown */
    uint64_t last_delivery_rt; /* CLOCK_REALTIME ns of the last measured delivery */
    uint64_t interval_lat_max; /* worst latency (ns) since the last progress report */
    uint64_t windows;          /* groups that know the measured window (1 per group) */
    /* --storm: what happened to the streams dropped at measure start */
    uint64_t storm_dropped;    /* streams closed by the storm */
    uint64_t storm_no_id;      /* of those, streams that had no id to resume from */
    uint64_t storm_live;       /* streams that got their first frame after reconnecting */
    uint64_t storm_failed;     /* reconnects refused, reset or answered with a non-200 */
    uint64_t storm_caught_up;  /* resumed streams that got the first event published after
                                  the drop, every earlier one included */
    uint64_t storm_gaps;       /* gaps, duplicates and out-of-order events on resumed streams */
    uint64_t storm_duplicates;
    uint64_t storm_out_of_order;
    uint64_t storm_live_max;   /* ns from the drop until the last stream was live again */
    uint64_t storm_catchup_max; /* ns from the drop until the last stream caught up */
    char first_error[96];      /* the first error's text, for the report */
} fr_counters_t;

/* Adds `b` into `a` (maxima are maxed, the first error is kept). */
void fr_counters_add(fr_counters_t *a, const fr_counters_t *b);
/* Records the text of an error unless one is already recorded. */
void fr_counters_error(fr_counters_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Wall clock in ns: latency compares the publisher's scheduled time with the time a subscriber
 * read the event, in two processes, so it has to be the shared realtime clock. */
static inline uint64_t fr_now_rt(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Monotonic ns, for durations inside one process (connect time, publish round trips). */
static inline uint64_t fr_now_mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A benchmark that runs on without memory only produces wrong figures: allocation failure
 * aborts with file and line. */
#define fr_malloc(n) fr_xmalloc((n), __FILE__, __LINE__)
#define fr_calloc(n, s) fr_xcalloc((n), (s), __FILE__, __LINE__)
void *fr_xmalloc(size_t n, const char *file, int line);
void *fr_xcalloc(size_t n, size_t size, const char *file, int line);

#define FR_CONTAINER_OF(ptr, type, field) ((type *)((char *)(ptr)-offsetof(type, field)))

#endif
