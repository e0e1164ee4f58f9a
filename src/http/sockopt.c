/* Socket options and close modes of a connection.
 *
 * Silent drops: a peer behind a NAT table that expired or a firewall that drops its packets
 * sends no FIN and no RST; left alone, the kernel retransmits for ~15 minutes (tcp_retries2)
 * and the connection counts as live all the while. A peer is dead when something of ours is
 * outstanding (bytes in flight, or probes: keep-alive probes on a quiet connection, zero-window
 * probes on a full one) and it has acknowledged nothing for timeouts.ack:
 *
 *   each heartbeat tick, per connection, TCP_INFO:
 *     outstanding = unacked segments > 0 or probes out > 0
 *     quiet       = no ACK received since the connection's anchor (last_ack_recv)
 *     outstanding and quiet ? (anchor older than timeouts.ack ? dead : wait) : anchor = now
 *
 * A stream writes at least a heartbeat per interval, so a dead one is closed within heartbeat +
 * timeouts.ack (plus one tick). A quiet connection (idle keep-alive, a long-poll waiting) gets
 * keep-alive probes after a heartbeat of silence, so the same rule holds. A slow reader whose
 * window is shut answers the kernel's zero-window probes: it acknowledges, and it stays.
 * (TCP_USER_TIMEOUT would be cheaper but ends such a reader too once its window stays shut for
 * the timeout, answered probes or not.)
 *
 * Close modes: graceful (FIN; the kernel delivers what the socket holds) for a connection whose
 * answer or stream finished or whose client left; abortive (RST through SO_LINGER 0: no
 * TIME_WAIT, nothing kept for a peer that will not take it) for a dead peer, a hostile one, and
 * any connection closed while bytes still wait in user space for a socket that would not take
 * them (an ending stream whose last bytes did not leave within a heartbeat, a failed write). */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "base/log.h"
#include "base/util.h"
#include "http/conn.h"

static int sock_fd(fr_conn_t *c) {
    uv_os_fd_t fd;
    return uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0 ? (int)fd : -1;
}

void fr_sock_tune(fr_conn_t *c) {
    c->acked_ms = fr_mono_ms();
    int fd = sock_fd(c);
    if (fd < 0)
        return;
    const fr_config_t *cfg = c->http->config;
    uint64_t ack = fr_config_ack_ms(cfg);
    int idle = (int)((cfg->heartbeat_ms + 999) / 1000);
    int ack_s = (int)((ack + 999) / 1000);
    int intvl = ack_s / 4 > 1 ? ack_s / 4 : 1;
    /* The kernel's own verdict comes a few probes after the sweep's: a backstop. */
    int cnt = ack_s / intvl + 3;
    int one = 1;
    if (idle < 1)
        idle = 1;
    if (cnt > 127)
        cnt = 127;
    /* Best effort: a socket that refuses an option keeps the kernel's defaults. */
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
}

static void mark_dead(fr_conn_t *c) {
    c->close_reason = "ack_timeout";
    c->abortive = 1;
    FR_BUMP(c->http->metrics->ack_timeouts, 1);
}

void fr_sock_failed(fr_conn_t *c, int err) {
    /* The kernel gave up first (keep-alive probes unanswered, or retransmissions). */
    if (err == UV_ETIMEDOUT && !c->abortive)
        mark_dead(c);
}

void fr_sock_sweep(fr_http_t *http) {
    uint64_t now = fr_mono_ms(), ack = fr_config_ack_ms(http->config);
    for (fr_list_t *l = fr_list_first(&http->conns); l; l = fr_list_next(&http->conns, l)) {
        fr_conn_t *c = FR_LIST_ENTRY(l, fr_conn_t, link);
        struct tcp_info ti;
        socklen_t len = sizeof ti;
        int fd = c->closing ? -1 : sock_fd(c);
        if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
            continue;
        int outstanding = ti.tcpi_unacked > 0 || ti.tcpi_probes > 0;
        int quiet = ti.tcpi_last_ack_recv >= now - c->acked_ms;
        if (!outstanding || !quiet) {
            c->acked_ms = now;
            continue;
        }
        if (now - c->acked_ms < ack)
            continue;
        if (fr_log_enabled(FR_LOG_DEBUG))
            fr_debug("conn %llu from %s: nothing acknowledged for %u ms (%u unacked, %u probes, "
                     "%u retransmits): closing it",
                     (unsigned long long)c->x.id, c->remote, ti.tcpi_last_ack_recv,
                     ti.tcpi_unacked, (unsigned)ti.tcpi_probes, (unsigned)ti.tcpi_retransmits);
        mark_dead(c);
        fr_conn_close(c);
    }
}

void fr_sock_close_mode(fr_conn_t *c) {
    if (!c->abortive && c->pending_writes == 0)
        return;
    int fd = sock_fd(c);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0)
        FR_BUMP(c->http->metrics->resets, 1);
}
