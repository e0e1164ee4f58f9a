/* What the targets that drive a real worker share (fuzz_http, fuzz_h2): an app written into a
 * temp dir, a listener on 127.0.0.1, loopback clients that never block, and a clean slate per
 * input. Header-only, like fuzz_common.h. */
#ifndef FR_FUZZ_WORKER_H
#define FR_FUZZ_WORKER_H

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "server/worker.h"

/* Writes text to root/rel, making the directories on the way; aborts when it cannot. */
static inline void fw_write_file(const char *root, const char *rel, const char *text) {
    char path[512], dir[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    snprintf(dir, sizeof dir, "%s", path);
    for (char *p = dir + strlen(root) + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(dir, 0700);
            *p = '/';
        }
    }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(text, 1, strlen(text), f) != strlen(text) || fclose(f) != 0) {
        fprintf(stderr, "fuzz: cannot write %s\n", path);
        abort();
    }
}

/* Removes root when it is one of ours (its name starts with prefix). */
static inline void fw_rm_tree(const char *root, const char *prefix) {
    char cmd[600];
    if (root[0] && strncmp(root, prefix, strlen(prefix)) == 0) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
        if (system(cmd) != 0)
            fprintf(stderr, "fuzz: could not remove %s\n", root);
    }
}

/* Listens on 127.0.0.1 on a free port; returns the port. */
static inline int fw_listen(uv_loop_t *loop, uv_tcp_t *listener, uv_connection_cb on_conn) {
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_init(loop, listener);
    if (uv_tcp_bind(listener, (struct sockaddr *)&addr, 0) != 0 ||
        uv_listen((uv_stream_t *)listener, 128, on_conn) != 0)
        abort();
    struct sockaddr_in bound;
    int bl = sizeof bound;
    uv_tcp_getsockname(listener, (struct sockaddr *)&bound, &bl);
    return ntohs(bound.sin_port);
}

/* Each input starts from an empty hub and fresh rate limits: results do not depend on the
 * inputs that ran before, and memory does not grow with the run. */
static inline void fw_fresh_state(fr_worker_t *w) {
    fr_hub_close(w->streams.hub);
    fr_ratelimit_close(w->limits);
    fr_hub_init(w->streams.hub, 1, w->config->replay_events, w->config->replay_ms, fr_now_ms());
    fr_ratelimit_init(w->limits);
}

/* A non-blocking loopback client socket connected to port (the kernel completes the handshake
 * against the listen backlog: a blocking connect returns before the loop accepts). */
static inline int fw_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        abort();
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", port, &a);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        /* libFuzzer's -timeout alarm can interrupt the call; the connection then completes on
         * its own. */
        struct pollfd pfd = {fd, POLLOUT, 0};
        int err = errno, soerr = 0;
        socklen_t sl = sizeof soerr;
        if (err != EINTR || poll(&pfd, 1, 2000) != 1 ||
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0) {
            errno = soerr ? soerr : err;
            perror("fuzz: connect to the worker");
            abort();
        }
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Reads what fd has into in; *eof once the server closed (or the socket failed). */
static inline void fw_recv(int fd, fz_buf_t *in, int *eof) {
    char buf[65536];
    while (fd >= 0 && !*eof) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n > 0) {
            fz_put(in, buf, (size_t)n);
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            *eof = 1;
        return;
    }
}

static inline uint64_t fw_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Whether an input's leave loop goes on: the worker still holds a connection or a stream, and
 * less than 2 s went by since start_ns (fw_now_ns). After 2,000 rounds each one sleeps 100 µs:
 * a static file is read on libuv's thread pool, and a loop that never waits can spin past a
 * pool thread that a busy machine has not scheduled yet. */
static inline int fw_still_busy(const fr_worker_t *w, int round, uint64_t start_ns) {
    if (w->http.nconns == 0 && w->streams.count == 0)
        return 0;
    if (round < 2000)
        return 1;
    if (fw_now_ns() - start_ns > 2000000000u)
        return 0;
    usleep(100);
    return 1;
}

#endif
