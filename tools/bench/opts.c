/* Option parsing and validation; see opts.h and docs/BENCH_TOOL.md. */
#include "opts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "payload.h"

void fr_opts_usage(FILE *out) {
    fprintf(out,
            "Usage: freshet-bench [-h host] [-p port] [-c subscribers] [-t topics] [-r rate]\n"
            "                     [-d seconds] [-s bytes] [options]\n"
            "\n"
            "Load an SSE or WebSocket server on this machine with subscribers and a publisher,\n"
            "and measure connect time, deliveries/s, latency from the scheduled publish, gaps and\n"
            "duplicates.\n"
            "\n"
            " -h <host>            Server address, in 127.0.0.0/8 or localhost (127.0.0.1)\n"
            " -p <port>            Server port (3000)\n"
            " -c <subscribers>     Subscriber connections (100); subscriber j reads topic\n"
            "                      j %% topics\n"
            " --ws                 Subscribers open WebSockets (GET <sub-path><topic> with\n"
            "                      Upgrade: websocket) instead of SSE streams\n"
            " --tls                Every connection speaks TLS (HTTPS, WSS); the server's\n"
            "                      certificate is not checked\n"
            " --cacert <file>      --tls, checking the server's certificate against this PEM\n"
            "                      file (it must name the -h host)\n"
            " -t <topics>          Topics <prefix>0 .. <prefix>N-1 (1)\n"
            " -r <rate>            Publishes per second in total, round-robin over the topics;\n"
            "                      0 = as fast as the pipeline allows (10)\n"
            " -d <seconds>         Measured duration, after warmup (10)\n"
            " -s <bytes>           Publish body size, at least %d (128)\n"
            " --warmup <seconds>   Publish before measuring (1)\n"
            " --tail <seconds>     Wait at most this long after the last publish for\n"
            "                      deliveries; ends early when all are in (5)\n"
            " --procs <n>          Processes for the subscribers (auto: as many as the\n"
            "                      descriptor limit requires)\n"
            " --sources <a>[-<b>]  Bind subscribers round-robin to source addresses a..b,\n"
            "                      e.g. 127.0.0.1-127.0.0.8 (default: one per 2,000 subscribers\n"
            "                      from 127.0.0.1 when there are more than 2,000)\n"
            " --pipeline <k>       Publish requests in flight on each publishing connection (1)\n"
            " --pub-conns <n>      Keep-alive connections the publisher spreads its requests\n"
            "                      over, round-robin as the timetable allows: n x k in flight\n"
            "                      (-r stays the total rate); order is checked per connection,\n"
            "                      whose events may be stored interleaved with another's (1)\n"
            " --server-pid <pid>[,<pid>...]\n"
            "                      Report the server's RSS and CPU from /proc, summed over the\n"
            "                      PIDs given (e.g. an nginx master and its workers)\n"
            " --storm              At measure start, close every stream at once and reopen it\n"
            "                      with Last-Event-ID (WebSocket: ?lastEventId=) while\n"
            "                      publishing goes on; report the time until all are live\n"
            "                      again, and gaps and duplicates\n"
            " --connect-timeout <s> Connect phase limit (30)\n"
            " --connect-burst <n>  Connects in flight per process (256)\n"
            " --prefix <str>       Topic name prefix (t)\n"
            " --pub-port <port>    Publish to another node on the same host (cross-node\n"
            "                      latency through a shared broker); default: -p\n"
            " --sub-path <path>    Subscribe URL prefix (/sub/)\n"
            " --pub-path <path>    Publish URL prefix (/pub/)\n"
            " --json               Final report as one JSON object on stdout\n"
            " -q                   No progress line on stderr\n"
            " --help, --version\n"
            "\n"
            "Examples:\n"
            "  freshet-bench -p 3000 -c 10000 -r 20 -d 30 --server-pid $(pidof freshet)\n"
            "  freshet-bench -p 3000 -c 1000 -r 0 --pipeline 16 -d 20 --json\n"
            "  freshet-bench -p 3000 -c 100 -r 0 --pub-conns 16 -d 20 --json\n"
            "  freshet-bench -p 3000 -c 2000 -r 20 -d 10 --ws\n"
            "  freshet-bench -p 3443 -c 10000 -r 5 -d 30 --tls --server-pid $(pidof freshet)\n",
            FR_PAYLOAD_MIN);
}

/* Strict numbers: the whole argument must parse, within [lo, hi]. */
static int num(const char *name, const char *arg, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (errno || end == arg || *end || isnan(v) || v < lo || v > hi) {
        fprintf(stderr, "freshet-bench: %s wants a number from %g to %g, got '%s'\n", name, lo, hi,
                arg);
        return -1;
    }
    *out = v;
    return 0;
}

static int count(const char *name, const char *arg, double lo, double hi, uint32_t *out) {
    double v;
    if (num(name, arg, lo, hi, &v) < 0)
        return -1;
    if (v != floor(v)) {
        fprintf(stderr, "freshet-bench: %s wants a whole number, got '%s'\n", name, arg);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static int text(const char *name, const char *arg, char *out, size_t cap) {
    if (strlen(arg) >= cap || strpbrk(arg, " \r\n")) {
        fprintf(stderr, "freshet-bench: %s must be shorter than %zu bytes, without spaces\n", name,
                cap);
        return -1;
    }
    memcpy(out, arg, strlen(arg) + 1);
    return 0;
}

/* The tool loads a server hard: it only ever targets this machine's loopback network. */
static int loopback(const char *what, const char *arg, uint32_t *addr) {
    struct in_addr a;
    if (strcmp(arg, "localhost") == 0)
        arg = "127.0.0.1";
    if (inet_pton(AF_INET, arg, &a) != 1 || (ntohl(a.s_addr) >> 24) != 127) {
        fprintf(stderr,
                "freshet-bench: refusing %s '%s': only 127.0.0.0/8 addresses (or localhost) are "
                "allowed; this tool loads a server on this machine only\n",
                what, arg);
        return -1;
    }
    *addr = ntohl(a.s_addr);
    return 0;
}

/* --server-pid: one PID or a comma-separated list. */
static int pid_list(const char *arg, fr_opts_t *o) {
    const char *p = arg;
    o->nserver_pids = 0;
    for (;;) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < 1 || v > (1L << 30) || (*end && *end != ',') ||
            o->nserver_pids == FR_MAX_SERVER_PIDS) {
            fprintf(stderr,
                    "freshet-bench: --server-pid wants a PID or a list of up to %d PIDs "
                    "separated by commas, got '%s'\n",
                    FR_MAX_SERVER_PIDS, arg);
            return -1;
        }
        o->server_pids[o->nserver_pids++] = (int)v;
        if (!*end)
            return 0;
        p = end + 1;
    }
}

static int sources(const char *arg, fr_opts_t *o) {
    char first[32], last[32];
    const char *dash = strchr(arg, '-');
    size_t n = dash ? (size_t)(dash - arg) : strlen(arg);
    if (n >= sizeof first || (dash && strlen(dash + 1) >= sizeof last)) {
        fprintf(stderr, "freshet-bench: --sources wants A or A-B, e.g. 127.0.0.1-127.0.0.8\n");
        return -1;
    }
    memcpy(first, arg, n);
    first[n] = '\0';
    snprintf(last, sizeof last, "%s", dash ? dash + 1 : first);
    uint32_t a, b;
    if (loopback("source", first, &a) < 0 || loopback("source", last, &b) < 0)
        return -1;
    if (b < a || b - a >= 65536) {
        fprintf(stderr, "freshet-bench: --sources range %s is empty or too large\n", arg);
        return -1;
    }
    o->src_first = a;
    o->src_count = b - a + 1;
    return 0;
}

enum {
    OPT_PROCS = 256,
    OPT_SOURCES,
    OPT_PIPELINE,
    OPT_PUB_CONNS,
    OPT_SERVER_PID,
    OPT_JSON,
    OPT_WARMUP,
    OPT_TAIL,
    OPT_CONNECT_TIMEOUT,
    OPT_CONNECT_BURST,
    OPT_PREFIX,
    OPT_SUB_PATH,
    OPT_PUB_PATH,
    OPT_PUB_PORT,
    OPT_STORM,
    OPT_WS,
    OPT_TLS,
    OPT_CACERT,
    OPT_HELP,
    OPT_VERSION,
};

static const struct option longopts[] = {
    {"procs", required_argument, NULL, OPT_PROCS},
    {"sources", required_argument, NULL, OPT_SOURCES},
    {"pipeline", required_argument, NULL, OPT_PIPELINE},
    {"pub-conns", required_argument, NULL, OPT_PUB_CONNS},
    {"server-pid", required_argument, NULL, OPT_SERVER_PID},
    {"json", no_argument, NULL, OPT_JSON},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"tail", required_argument, NULL, OPT_TAIL},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"connect-burst", required_argument, NULL, OPT_CONNECT_BURST},
    {"prefix", required_argument, NULL, OPT_PREFIX},
    {"sub-path", required_argument, NULL, OPT_SUB_PATH},
    {"pub-path", required_argument, NULL, OPT_PUB_PATH},
    {"pub-port", required_argument, NULL, OPT_PUB_PORT},
    {"storm", no_argument, NULL, OPT_STORM},
    {"ws", no_argument, NULL, OPT_WS},
    {"tls", no_argument, NULL, OPT_TLS},
    {"cacert", required_argument, NULL, OPT_CACERT},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

static void defaults(fr_opts_t *o) {
    memset(o, 0, sizeof *o);
    snprintf(o->host, sizeof o->host, "127.0.0.1");
    o->subscribers = 100;
    o->topics = 1;
    o->rate = 10;
    o->duration = 10;
    o->warmup = 1;
    o->tail = 5;
    o->connect_timeout = 30;
    o->payload = 128;
    o->pipeline = 1;
    o->pub_conns = 1;
    o->connect_burst = 256;
    snprintf(o->prefix, sizeof o->prefix, "t");
    snprintf(o->sub_path, sizeof o->sub_path, "/sub/");
    snprintf(o->pub_path, sizeof o->pub_path, "/pub/");
}

int fr_opts_parse(fr_opts_t *o, int argc, char **argv) {
    defaults(o);
    uint32_t port = 3000, pub_port = 0;
    uint32_t host = 0x7f000001;
    int c, bad = 0;
    opterr = 0;
    while (!bad && (c = getopt_long(argc, argv, ":h:p:c:t:r:d:s:q", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            bad =
                loopback("host", optarg, &host) < 0 || text("-h", optarg, o->host, sizeof o->host);
            break;
        case 'p':
            bad = count("-p", optarg, 1, 65535, &port) < 0;
            break;
        case 'c':
            bad = count("-c", optarg, 0, 10000000, &o->subscribers) < 0;
            break;
        case 't':
            bad = count("-t", optarg, 1, 10000000, &o->topics) < 0;
            break;
        case 'r':
            bad = num("-r", optarg, 0, 10000000, &o->rate) < 0;
            break;
        case 'd':
            bad = num("-d", optarg, 0.1, 86400, &o->duration) < 0;
            break;
        case 's':
            bad = count("-s", optarg, 0, 16 << 20, &o->payload) < 0;
            break;
        case 'q':
            o->quiet = 1;
            break;
        case OPT_PROCS:
            bad = count("--procs", optarg, 1, 256, &o->procs) < 0;
            break;
        case OPT_SOURCES:
            bad = sources(optarg, o) < 0;
            break;
        case OPT_PIPELINE:
            bad = count("--pipeline", optarg, 1, 4096, &o->pipeline) < 0;
            break;
        case OPT_PUB_CONNS:
            bad = count("--pub-conns", optarg, 1, FR_MAX_PUB_CONNS, &o->pub_conns) < 0;
            break;
        case OPT_SERVER_PID:
            bad = pid_list(optarg, o) < 0;
            break;
        case OPT_JSON:
            o->json = 1;
            break;
        case OPT_WARMUP:
            bad = num("--warmup", optarg, 0, 3600, &o->warmup) < 0;
            break;
        case OPT_TAIL:
            bad = num("--tail", optarg, 0, 3600, &o->tail) < 0;
            break;
        case OPT_CONNECT_TIMEOUT:
            bad = num("--connect-timeout", optarg, 0.1, 3600, &o->connect_timeout) < 0;
            break;
        case OPT_CONNECT_BURST:
            bad = count("--connect-burst", optarg, 1, 1000000, &o->connect_burst) < 0;
            break;
        case OPT_PREFIX:
            bad = text("--prefix", optarg, o->prefix, sizeof o->prefix) < 0;
            break;
        case OPT_SUB_PATH:
            bad = text("--sub-path", optarg, o->sub_path, sizeof o->sub_path) < 0;
            break;
        case OPT_PUB_PATH:
            bad = text("--pub-path", optarg, o->pub_path, sizeof o->pub_path) < 0;
            break;
        case OPT_PUB_PORT:
            bad = count("--pub-port", optarg, 1, 65535, &pub_port) < 0;
            break;
        case OPT_STORM:
            o->storm = 1;
            break;
        case OPT_WS:
            o->ws = 1;
            break;
        case OPT_TLS:
            o->tls = 1;
            break;
        case OPT_CACERT:
            o->tls = 1;
            bad = text("--cacert", optarg, o->cacert, sizeof o->cacert) < 0;
            break;
        case OPT_HELP:
            fr_opts_usage(stdout);
            return 1;
        case OPT_VERSION:
            printf("freshet-bench %s\n", FR_BENCH_VERSION);
            return 1;
        case ':':
            fprintf(stderr, "freshet-bench: %s needs a value\n", argv[optind - 1]);
            bad = 1;
            break;
        default:
            fprintf(stderr, "freshet-bench: unknown option %s (see --help)\n", argv[optind - 1]);
            bad = 1;
        }
    }
    if (!bad && optind < argc) {
        fprintf(stderr, "freshet-bench: unexpected argument '%s' (see --help)\n", argv[optind]);
        bad = 1;
    }
    if (bad)
        return 2;
    uint32_t min = o->pub_conns > 1 ? FR_PAYLOAD_MIN_CONNS : FR_PAYLOAD_MIN;
    if (o->payload < min) {
        fprintf(stderr,
                "freshet-bench: -s %u is below the %u bytes the payload's fields need%s; "
                "using %u\n",
                o->payload, min, o->pub_conns > 1 ? " with --pub-conns" : "", min);
        o->payload = min;
    }
    /* The publisher numbers each topic's events per connection, and each stream checks each
     * connection's order: both keep a table of pub_conns entries per topic or per stream. */
    if (o->pub_conns > 1 && (uint64_t)o->pub_conns * o->topics > FR_MAX_PUB_TABLE) {
        fprintf(stderr, "freshet-bench: --pub-conns %u x -t %u exceeds %u sequence counters\n",
                o->pub_conns, o->topics, FR_MAX_PUB_TABLE);
        return 2;
    }
    if (o->storm && o->subscribers == 0) {
        fprintf(stderr, "freshet-bench: --storm needs subscribers (-c)\n");
        return 2;
    }
    o->server_pid = o->nserver_pids ? o->server_pids[0] : 0;
    memset(&o->server, 0, sizeof o->server);
    o->server.sin_family = AF_INET;
    o->server.sin_addr.s_addr = htonl(host);
    o->server.sin_port = htons((uint16_t)port);
    o->pub_server = o->server;
    if (pub_port)
        o->pub_server.sin_port = htons((uint16_t)pub_port);
    return 0;
}
