/* Records between the parent and its child processes, over one socketpair per child:
 *
 *   child  -> parent   READY   fr_counters_t        connect phase over
 *                      SNAP    fr_counters_t        once a second (10 times a second in the tail)
 *                      FINAL   fr_ipc_final_t       counters and histograms, just before exit
 *   parent -> child    STORM   fr_ipc_storm_t       --storm: drop every stream and resume it
 *                      WINDOW  fr_ipc_window_t      publishing is over: the measured events
 *                      (EOF)                        stop: close the streams and send FINAL
 *
 * A record is a 8-byte header (type, payload length) and the payload as raw bytes: both ends
 * are the same binary. */
#ifndef FR_IPC_H
#define FR_IPC_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "bench.h"
#include "hist.h"

enum { FR_IPC_READY = 1, FR_IPC_SNAP, FR_IPC_FINAL, FR_IPC_WINDOW, FR_IPC_STORM };

typedef struct fr_ipc_window_s {
    uint64_t g0, g1; /* events [g0, g1) were published after warmup */
} fr_ipc_window_t;

typedef struct fr_ipc_storm_s {
    uint64_t g_drop; /* events published when the parent decided the drop */
} fr_ipc_storm_t;

typedef struct fr_ipc_final_s {
    fr_counters_t c;
    fr_hist_t latency;
    fr_hist_t connect;
    fr_hist_t storm;
} fr_ipc_final_t;

typedef struct fr_ipc_s fr_ipc_t;
typedef void (*fr_ipc_record_cb)(fr_ipc_t *ch, uint32_t type, const void *data, size_t len);
typedef void (*fr_ipc_cb)(fr_ipc_t *ch);

struct fr_ipc_s {
    uv_pipe_t pipe;
    void *data; /* the owner's */
    int eof;    /* the other end shut down or went away */
    /* private */
    char *_buf; /* bytes of an incomplete record */
    size_t _len, _cap;
    fr_ipc_record_cb _on_record;
    fr_ipc_cb _on_eof;
    fr_ipc_cb _on_closed;
    uv_shutdown_t _shutdown;
    int _shut; /* 0 not shut down, 1 shutdown under way, 2 done (or impossible) */
    int _closing;
};

/* Wraps socket `fd` (taking ownership) and starts reading. `on_eof` runs when the other end
 * shuts down its side or exits. */
int fr_ipc_open(fr_ipc_t *ch, uv_loop_t *loop, int fd, fr_ipc_record_cb on_record,
                fr_ipc_cb on_eof);
/* Queues one record (the payload is copied). */
int fr_ipc_send(fr_ipc_t *ch, uint32_t type, const void *data, size_t len);
/* Shuts down our sending side once queued records are written: the other end sees EOF. */
void fr_ipc_shutdown(fr_ipc_t *ch);
/* Closes the channel after queued records are written; `on_closed` when done. */
void fr_ipc_close(fr_ipc_t *ch, fr_ipc_cb on_closed);

#endif
