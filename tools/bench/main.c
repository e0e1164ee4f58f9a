/* freshet-bench: load and latency tool for SSE and WebSocket servers on this
 * machine (docs/BENCH_TOOL.md).
 *
 * main() settles how many processes the subscribers need, forks them before any event loop
 * exists (a libuv loop does not survive fork), and hands over to the parent's run. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "opts.h"
#include "run.h"

/* Descriptors a process keeps for itself besides subscriber sockets: stdio, the loop's
 * internals, the publisher, pipes to children. */
#define FD_RESERVE 64

/* Subscribers per source address when --sources is not given (see plan()). */
#define SUBS_PER_SOURCE 2000

/* Ephemeral ports one source address offers towards one server address. */
static uint32_t port_range(void) {
    unsigned lo = 32768, hi = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%u %u", &lo, &hi) != 2 || hi < lo)
            lo = 32768, hi = 60999;
        fclose(f);
    }
    return hi - lo + 1;
}

/* The soft descriptor limit is raised to the hard one: every subscriber is a socket. */
static uint64_t raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur == RLIM_INFINITY ? 1u << 20 : (uint64_t)rl.rlim_cur;
}

static int plan(fr_opts_t *o) {
    uint64_t limit = raise_nofile();
    uint64_t per_proc = limit > FD_RESERVE * 2 ? limit - FD_RESERVE : limit / 2;
    if (!o->procs)
        o->procs = o->subscribers ? (uint32_t)((o->subscribers + per_proc - 1) / per_proc) : 1;
    if (o->procs > o->subscribers && o->subscribers)
        o->procs = o->subscribers;
    if (!o->procs)
        o->procs = 1;
    uint64_t share = (o->subscribers + o->procs - 1) / o->procs;
    if (share > per_proc) {
        fprintf(stderr,
                "freshet-bench: %u subscribers over %u process%s need %llu descriptors each; the "
                "limit is %llu: use --procs %llu or more\n",
                o->subscribers, o->procs, o->procs == 1 ? "" : "es",
                (unsigned long long)(share + FD_RESERVE), (unsigned long long)limit,
                (unsigned long long)((o->subscribers + per_proc - 1) / per_proc));
        return -1;
    }
    /* The kernel looks for a free ephemeral port per connect by walking the connections of the
     * same source address: with tens of thousands from one address that walk costs more than
     * the rest of the connect, and past the port range connects fail. A source address per
     * SUBS_PER_SOURCE subscribers keeps it cheap. */
    if (!o->src_count && o->subscribers > SUBS_PER_SOURCE) {
        uint32_t n = (o->subscribers + SUBS_PER_SOURCE - 1) / SUBS_PER_SOURCE;
        o->src_first = 0x7f000001;
        o->src_count = n < 254 ? n : 254;
    }
    uint32_t ports = port_range();
    uint32_t per_src =
        o->src_count ? (o->subscribers + o->src_count - 1) / o->src_count : o->subscribers;
    if (per_src > ports)
        fprintf(stderr,
                "freshet-bench: note: %u subscribers per source address exceed its %u "
                "ephemeral ports; widen --sources\n",
                per_src, ports);
    return 0;
}

/* Forks the children. Each child keeps only its own end of its own socketpair, so a child sees
 * EOF when the parent stops the run or dies. */
static int spawn(const fr_opts_t *o, fr_child_t *kids) {
    uint32_t base = o->subscribers / o->procs, extra = o->subscribers % o->procs, first = 0;
    for (uint32_t i = 0; i < o->procs; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
            fprintf(stderr, "freshet-bench: socketpair: %s\n", strerror(errno));
            return -1;
        }
        kids[i].first = first;
        kids[i].count = base + (i < extra ? 1 : 0);
        first += kids[i].count;
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "freshet-bench: fork: %s\n", strerror(errno));
            close(sv[0]);
            close(sv[1]);
            return -1;
        }
        if (pid == 0) {
            /* Ctrl-C goes to the whole process group; the parent alone decides when to stop. */
            signal(SIGINT, SIG_IGN);
            close(sv[0]);
            for (uint32_t j = 0; j < i; j++)
                close(kids[j].fd);
            _exit(fr_run_child(o, sv[1], kids[i].first, kids[i].count));
        }
        close(sv[1]);
        kids[i].pid = pid;
        kids[i].fd = sv[0];
    }
    return 0;
}

int main(int argc, char **argv) {
    fr_opts_t o;
    int rc = fr_opts_parse(&o, argc, argv);
    if (rc)
        return rc == 1 ? 0 : 2;
    /* A server that resets a connection must not kill the tool on its next write. */
    signal(SIGPIPE, SIG_IGN);
    /* The publisher's timerfd wakes up this much after the due time at most (default 50 us). */
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    if (plan(&o) < 0)
        return 2;
    if (o.procs == 1)
        return fr_run_parent(&o, NULL, 0);

    fr_child_t *kids = calloc(o.procs, sizeof *kids);
    if (!kids)
        return 1;
    uint32_t started = 0;
    if (spawn(&o, kids) == 0) {
        started = o.procs;
        rc = fr_run_parent(&o, kids, o.procs);
    } else {
        while (started < o.procs && kids[started].pid > 0)
            started++;
        for (uint32_t i = 0; i < started; i++)
            close(kids[i].fd); /* EOF: the children end on their own */
        rc = 1;
    }
    for (uint32_t i = 0; i < started; i++)
        waitpid(kids[i].pid, NULL, 0);
    free(kids);
    return rc;
}
