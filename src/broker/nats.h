/* The NATS JetStream broker: one stream per app holds every topic as a subject; JetStream
 * republishes each stored event on a live subject that nodes subscribe to, only for the topics
 * their streams follow.
 *
 *   publish ── PUB fr.<s>.s.<topic token> (reply: this node's inbox) ──► stream <s>
 *              ◄── PubAck {"seq":N}: the event id is <stream created ms>-<N>
 *   stream <s> ── RePublish ──► fr.<s>.l.<token>  (headers Nats-Sequence, Nats-Last-Sequence)
 *   node ◄── SUB fr.<s>.l.<token> (only while a local stream follows the topic)
 *   resume ── Direct Get (last by subject, the id's sequence, next by subject…) ──► stream
 *   presence ── request fr.<s>.p.<token> ──► every node following the topic answers its part
 *
 * The ids' sequence is the stream's own: strictly increasing over every topic, so a resume
 * knows where to read from the id alone; the ms part is the stream's creation time, the same
 * for every id of one stream, and greater for a stream created later. Live events carry the
 * sequence of the topic's previous event (Nats-Last-Sequence): a node that missed one (its
 * connection dropped, or the cluster had not routed the subject to it yet) reads the gap from
 * the stream before it delivers more. Everything touching freshet state runs on the worker's
 * loop: the client library's threads only queue what they received (see nats_private.h). */
#ifndef FR_BROKER_NATS_H
#define FR_BROKER_NATS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "broker/broker.h"
#include "core/metrics.h"

/* Parses the URL (broker/nats_url.h) and starts connecting on loop's first iteration. `hub`
 * (borrowed; it must outlive the broker's streams) is this node's one-slot hub. Returns NULL
 * with a message in err for a malformed URL. */
fr_broker_t *fr_nats_broker_new(uv_loop_t *loop, fr_hub_t *hub, const char *url,
                                size_t replay_events, uint64_t replay_ms, fr_metrics_t *metrics,
                                char *err, size_t errlen);

/* Checks a NATS broker URL without connecting; 0, or -1 with a message in err. */
int fr_nats_url_check(const char *url, char *err, size_t errlen);

/* 1 when url names a NATS broker (nats://). */
int fr_nats_url_is(const char *url);

/* Releases the client library's process-wide memory: call once at exit, after every NATS
 * broker is freed. */
void fr_nats_shutdown(void);

#endif
