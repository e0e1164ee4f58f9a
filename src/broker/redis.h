/* The Redis broker: events are appended to a Redis Stream per topic and announced on a
 * channel per topic, in one atomic step (a Redis function, see broker/redis_lib.c), so every
 * node sees the same ids and the same order, and any node can replay any topic.
 *
 *   publish ── FCALL freshet_publish_unchecked ──► XADD fr:{topic}:s MAXLEN ~ …
 *                                                 + PUBLISH fr:{topic}:c (one per call)
 *   node ◄── SUBSCRIBE fr:{topic}:c (only while a local stream follows the topic)
 *   resume ── FCALL freshet_resume ──► per topic: ok | stale | invalid, last id, events after
 *   sweep ── FCALL freshet_trim ──► drops what is older than the time window (followed topics)
 *
 * Two connections per worker: one for commands, one in subscribe mode. Both reconnect with
 * exponential backoff and jitter; when the subscriber comes back, each followed topic is
 * filled from its Stream from the last id this node delivered, so local streams see no gap.
 * When the Stream no longer holds that id, the hub is told the topic was lost (fr_hub_lose).
 * With redis-sentinel:// the primary's address comes from Sentinels and follows failovers. */
#ifndef FR_BROKER_REDIS_H
#define FR_BROKER_REDIS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "broker/broker.h"
#include "broker/redis_url.h"
#include "core/metrics.h"

typedef struct fr_redis_s fr_redis_t;

/* Parses the URL (see fr_redis_url_check) and starts connecting on loop. `hub` (borrowed; it
 * must outlive the broker's streams) is this node's one-slot hub: the broker fans what Redis
 * delivers out through it. `metrics` (borrowed) are the worker's counters, where the broker
 * counts failovers, probe failures and unconfirmed publishes. Returns NULL with a message in
 * err for a malformed URL. */
fr_broker_t *fr_redis_broker_new(uv_loop_t *loop, fr_hub_t *hub, const char *url,
                                 size_t replay_events, uint64_t replay_ms, fr_metrics_t *metrics,
                                 char *err, size_t errlen);

/* The redis-cluster:// broker (broker/redis_cluster.c); fr_redis_broker_new calls it for such a
 * URL. */
fr_broker_t *fr_redis_cluster_new(uv_loop_t *loop, fr_hub_t *hub, const char *url,
                                  size_t replay_events, uint64_t replay_ms, fr_metrics_t *metrics,
                                  char *err, size_t errlen);

/* Checks a Redis broker URL without connecting; 0, or -1 with a message in err:
 *   redis://[[user]:password@]host[:port][/db][?params]
 *   redis-sentinel://[[user]:password@]host[:port][,host[:port]...]/master-name[/db][?params]
 *   redis-cluster://[[user]:password@]host[:port][,host[:port]...][?params]
 *   unix:///path[?params]
 *   params: replicas=N (0-100: a publish waits until N replicas have it), wait=MS (1-60000,
 *           default 1000: for at most that long) */
int fr_redis_url_check(const char *url, char *err, size_t errlen);

/* Where the broker's Redis primary is now, for other clients of the same Redis
 * (freshet.redis): the URL's address, or with redis-sentinel:// the one the Sentinels last
 * named. Returns 0, or -1 when b is no Redis broker, connects through a unix socket, or no
 * Sentinel has answered yet. Read-only; call it on the broker's loop. */
int fr_redis_broker_primary(const fr_broker_t *b, fr_redis_addr_t *out);

/* The Redis function library that every node loads (FUNCTION LOAD REPLACE). */
extern const char fr_redis_library[];

#endif
