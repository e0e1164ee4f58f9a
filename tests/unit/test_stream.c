/* A stream through a fake sink, without sockets: the bytes it writes, in order, as the sink
 * takes them or holds them (a full socket), and what its out-queue policy makes of a client
 * that stops reading — drops reported in band, conflation, disconnect, the lag cut-off, a
 * critical event that ends the stream rather than vanish — and a long-poll's whole answer. */
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "broker/memory.h"
#include "fr_test.h"
#include "stream/stream.h"
#include "transport/sse.h"

/* ---- the fake sink ------------------------------------------------------------------------ */

typedef struct {
    fr_sink_t sink;          /* first: the stream sees only this */
    int status;              /* of the head, 0 before it */
    int64_t length;
    char out[65536];         /* every byte that left, in order */
    size_t len;
    int stuck;               /* writes are held (a full socket) until release() */
    fr_sink_done_cb done;    /* the held write */
    void *done_ctx;
    uv_buf_t held_bufs[256];
    size_t held_n, held;     /* held: the bytes queued() reports */
    int ended, reuse, aborted;
} fake_t;

static fake_t *fake_of(fr_sink_t *s) {
    return (fake_t *)s;
}

static void take(fake_t *f, const uv_buf_t *bufs, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (f->len + bufs[i].len <= sizeof f->out) {
            memcpy(f->out + f->len, bufs[i].base, bufs[i].len);
            f->len += bufs[i].len;
        }
    }
}

static void fake_head(fr_sink_t *s, const fr_head_t *h) {
    fake_of(s)->status = h->status;
    fake_of(s)->length = h->length;
}

static int fake_write(fr_sink_t *s, uv_buf_t *bufs, size_t n, size_t len,
                      fr_sink_done_cb done, void *ctx) {
    fake_t *f = fake_of(s);
    /* The contract a real sink relies on: len is the sum, and the slots around are free to
     * frame in (ASan sees a write outside the writer's array). */
    size_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += bufs[i].len;
    CHECK_EQ_UINT(sum, len);
    bufs[-1] = (uv_buf_t){.base = NULL, .len = 0};
    bufs[n] = (uv_buf_t){.base = NULL, .len = 0};
    if (!f->stuck) {
        take(f, bufs, n);
        return FR_SINK_DONE;
    }
    /* The bytes stay the writer's until done(); they leave when the socket drains. */
    f->done = done;
    f->done_ctx = ctx;
    f->held = 0;
    for (size_t i = 0; i < n; i++)
        f->held += bufs[i].len;
    memcpy(f->held_bufs, bufs, n * sizeof *bufs);
    f->held_n = n;
    return FR_SINK_PENDING;
}

static size_t fake_queued(const fr_sink_t *s) {
    return ((const fake_t *)s)->held;
}

static void fake_end(fr_sink_t *s, int reuse) {
    fake_of(s)->ended = 1;
    fake_of(s)->reuse = reuse;
    s->owner_ops = NULL;
}

static void fake_abort(fr_sink_t *s) {
    fake_of(s)->aborted = 1;
}

static void fake_ready(fr_sink_t *s) {
    (void)s;
}

static const fr_sink_ops_t fake_ops = {fake_head, fake_write, fake_queued, fake_end, fake_abort,
                                       fake_ready};

/* The socket drains: the held write leaves and the writer hears of it. */
static void release(fake_t *f) {
    f->stuck = 0;
    if (!f->done)
        return;
    take(f, f->held_bufs, f->held_n);
    fr_sink_done_cb done = f->done;
    f->done = NULL;
    f->held = 0;
    done(f->done_ctx, 0);
}

/* The client leaves: what a connection does when it closes. */
static void hang_up(fake_t *f) {
    if (f->done) {
        fr_sink_done_cb done = f->done;
        f->done = NULL;
        f->held = 0;
        done(f->done_ctx, UV_ECANCELED);
    }
    if (!f->sink.owner_ops)
        return; /* the stream ended and freed itself */
    const fr_sink_owner_ops_t *ops = f->sink.owner_ops;
    ops->gone(f->sink.owner, NULL);
    f->sink.owner_ops = NULL;
    ops->closed(f->sink.owner);
}

/* ---- a worker's stream layer, by hand ----------------------------------------------------- */

typedef struct {
    char dir[64];
    uv_loop_t loop;
    fr_hub_t hub;
    fr_broker_t *broker;
    fr_config_t config;
    fr_metrics_t metrics;
    fr_ratelimit_t limits;
    unsigned long tier_rejected[4];
    fr_streams_t env;
    fr_vm_t *vm;
} fx_t;

static void write_file(const char *dir, const char *name, const char *text) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static int fx_init(fx_t *fx) {
    memset(fx, 0, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/fr-test-stream-XXXXXX");
    if (!mkdtemp(fx->dir))
        return -1;
    write_file(fx->dir, "app.lua",
               "local freshet = require \"freshet\"\n"
               "local app = freshet.app {}\n"
               "app:stream(\"/s\", \"route.lua\")\n"
               "return app\n");
    write_file(fx->dir, "route.lua", "return { topics = function() return { \"a\" } end }\n");
    char app[128];
    snprintf(app, sizeof app, "%s/app.lua", fx->dir);
    fr_errors_t errs = {0};
    fx->vm = fr_vm_new(app, NULL, &errs);
    fr_errors_free(&errs);
    if (!fx->vm)
        return -1;
    uv_loop_init(&fx->loop);
    fr_config_defaults(&fx->config);
    /* Ids of a far-off start, so they depend only on their order. */
    fr_hub_init(&fx->hub, 1, 1000, 0, fr_now_ms() + 3600u * 1000u);
    fx->broker = fr_memory_broker_new(&fx->hub, 0);
    fr_ratelimit_init(&fx->limits);
    fr_streams_init(&fx->env, &fx->loop, fx->broker, &fx->config, &fx->metrics);
    fx->env.limits = &fx->limits;
    fx->env.tier_rejected = fx->tier_rejected;
    return 0;
}

static void fx_close(fx_t *fx) {
    fx->broker->ops->free(fx->broker);
    fr_hub_close(&fx->hub);
    fr_ratelimit_close(&fx->limits);
    fr_config_free(&fx->config);
    fr_vm_release(fx->vm);
    CHECK_EQ_INT(uv_loop_close(&fx->loop), 0);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    if (system(cmd) != 0)
        printf("    could not remove %s\n", fx->dir);
}

static void on_joined(void *ctx, fr_stream_t *s, const fr_joined_t *how) {
    (void)s;
    *(fr_joined_t *)ctx = *how;
}

/* A stream following topic "a" on the fake sink, started fresh. */
static fr_stream_t *open_stream(fx_t *fx, fake_t *f, const fr_transport_t *tp,
                                const fr_tier_t *tier, fr_slow_t slow) {
    memset(f, 0, sizeof *f);
    f->sink.ops = &fake_ops;
    char **topics = fr_calloc(1, sizeof *topics);
    topics[0] = fr_strdup("a");
    uint8_t *slows = fr_calloc(1, 1);
    slows[0] = (uint8_t)slow;
    fr_stream_init_t init = {.tp = tp,
                             .vm = fx->vm,
                             .route = &fx->vm->routes[0],
                             .who_ref = LUA_NOREF,
                             .budget = tier,
                             .topics = topics,
                             .ntopics = 1,
                             .slow = slows,
                             .id = 1,
                             .remote = "127.0.0.1",
                             .opened_ms = fr_mono_ms()};
    fr_stream_t *s = fr_stream_new(&fx->env, &init);
    fr_joined_t how = {1, 1, 1};
    if (fr_stream_join(s, NULL, on_joined, &how) < 0 || how.error || how.invalid || how.stale) {
        fr_stream_free(s);
        return NULL;
    }
    fr_stream_start(s, &f->sink, 0);
    return s;
}

static void publish(fx_t *fx, const char *data, fr_priority_t prio) {
    fr_id_t id;
    const char *err;
    if (fr_hub_publish(&fx->hub, "a", NULL, data, strlen(data), prio, 0, &id, &err) < 0)
        printf("    publish failed: %s\n", err);
}

/* One loop iteration's work: fan out what was published, then write. */
static void turn(fx_t *fx) {
    fr_hub_flush(&fx->hub, 0);
    fr_streams_flush(&fx->env, UINT64_MAX / 2);
}

/* The data lines of the events the client received, in order, joined by spaces. */
static void data_seen(const fake_t *f, char *buf, size_t cap) {
    size_t n = 0;
    buf[0] = '\0';
    for (const char *p = f->out; (p = strstr(p, "data: ")); p += 6) {
        const char *end = strchr(p, '\n');
        if (!end || strncmp(p + 6, "{\"dropped\"", 10) == 0)
            continue;
        int w = snprintf(buf + n, cap - n, "%s%.*s", n ? " " : "", (int)(end - p - 6), p + 6);
        n += (size_t)w < cap - n ? (size_t)w : 0;
    }
}

static fr_tier_t tier(size_t queue, size_t lag) {
    fr_tier_t t = {NULL, 0, 0, queue, 1u << 20, lag};
    return t;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_events_in_order(void) {
    fx_t fx;
    REQUIRE(fx_init(&fx) == 0);
    fake_t f;
    fr_tier_t t = tier(16, 100);
    fr_stream_t *s = open_stream(&fx, &f, &fr_transport_sse, &t, FR_SLOW_DROP);
    REQUIRE(s != NULL);
    CHECK_EQ_INT(f.status, 200);
    CHECK_EQ_INT(f.length, -1);
    publish(&fx, "one", FR_PRIO_NORMAL);
    publish(&fx, "two", FR_PRIO_NORMAL);
    turn(&fx);
    publish(&fx, "three", FR_PRIO_NORMAL);
    turn(&fx);
    /* The first frame: the retry delay and the stream's position, which dispatches no event. */
    CHECK(f.len > 16 && memcmp(f.out, "retry: 3000\nid: ", 16) == 0);
    CHECK(strstr(f.out, "\n\n") != NULL && strstr(f.out, "data") > strstr(f.out, "\n\n"));
    char seen[256];
    data_seen(&f, seen, sizeof seen);
    CHECK_EQ_STR(seen, "one two three");
    CHECK_EQ_UINT(s->sent, 3);
    hang_up(&f);
    CHECK_EQ_UINT(fx.env.count, 0);
    fx_close(&fx);
}

/* A socket that stops taking bytes: the queue fills, telemetry beyond it is dropped, and
 * once the socket drains the client hears how many it missed before the events it gets. */
static void test_full_socket_drops_and_reports(void) {
    fx_t fx;
    REQUIRE(fx_init(&fx) == 0);
    fake_t f;
    fr_tier_t t = tier(4, 100);
    fr_stream_t *s = open_stream(&fx, &f, &fr_transport_sse, &t, FR_SLOW_DROP);
    REQUIRE(s != NULL);
    turn(&fx); /* the retry: frame */
    f.stuck = 1;
    publish(&fx, "first", FR_PRIO_NORMAL);
    turn(&fx); /* held in the socket */
    char name[16];
    for (int i = 1; i <= 10; i++) {
        snprintf(name, sizeof name, "t%d", i);
        publish(&fx, name, FR_PRIO_TELEMETRY);
    }
    turn(&fx);
    CHECK_EQ_UINT(s->out.live, 4);
    CHECK_EQ_UINT(fx.metrics.dropped[FR_PRIO_TELEMETRY], 6);
    release(&f);
    turn(&fx);
    char seen[256];
    data_seen(&f, seen, sizeof seen);
    CHECK_EQ_STR(seen, "first t1 t2 t3 t4");
    const char *report = strstr(f.out, "event: dropped\ndata: {\"dropped\":6,");
    CHECK(report != NULL);
    CHECK(report && strstr(f.out, "data: t1") > report);
    hang_up(&f);
    fx_close(&fx);
}

static void test_conflate_keeps_the_newest(void) {
    fx_t fx;
    REQUIRE(fx_init(&fx) == 0);
    fake_t f;
    fr_tier_t t = tier(4, 100);
    fr_stream_t *s = open_stream(&fx, &f, &fr_transport_sse, &t, FR_SLOW_CONFLATE);
    REQUIRE(s != NULL);
    turn(&fx);
    f.stuck = 1;
    publish(&fx, "first", FR_PRIO_NORMAL);
    turn(&fx);
    publish(&fx, "v1", FR_PRIO_NORMAL);
    publish(&fx, "v2", FR_PRIO_NORMAL);
    publish(&fx, "v3", FR_PRIO_NORMAL);
    turn(&fx);
    CHECK_EQ_UINT(s->out.live, 1);
    CHECK_EQ_UINT(fx.metrics.conflated, 2);
    release(&f);
    turn(&fx);
    char seen[256];
    data_seen(&f, seen, sizeof seen);
    CHECK_EQ_STR(seen, "first v3");
    hang_up(&f);
    fx_close(&fx);
}

/* The stream is given up: its last bytes ask the client to come back in 5 s, the sink is told
 * the body is over, and the stream frees itself once they are out. */
static void check_evicted(fx_t *fx, fake_t *f, const char *why, unsigned long count) {
    CHECK_EQ_UINT(count, 1);
    release(f);
    turn(fx);
    CHECK(f->len >= 13 && memcmp(f->out + f->len - 13, "retry: 5000\n\n", 13) == 0);
    CHECK(f->ended && !f->reuse);
    CHECK_EQ_UINT(fx->env.count, 0);
    if (!(f->ended && fx->env.count == 0))
        printf("    (%s)\n", why);
}

static void test_disconnect_policy(void) {
    fx_t fx;
    REQUIRE(fx_init(&fx) == 0);
    fake_t f;
    fr_tier_t t = tier(2, 100);
    REQUIRE(open_stream(&fx, &f, &fr_transport_sse, &t, FR_SLOW_DISCONNECT) != NULL);
    turn(&fx);
    f.stuck = 1;
    for (int i = 0; i < 4; i++)
        publish(&fx, "x", FR_PRIO_TELEMETRY);
    turn(&fx);
    check_evicted(&fx, &f, "slow", fx.metrics.evicted_slow);
    fx_close(&fx);
}

static void test_lag_cut_off(void) {
    fx_t fx;
    REQUIRE(fx_init(&fx) == 0);
    fake_t f;
    fr_tier_t t = tier(2, 5);
    REQUIRE(open_stream(&fx, &f, &fr_transport_sse, &t, FR_SLOW_DROP) != NULL);
    turn(&fx);
    f.stuck = 1;
    publish(&fx, "held", FR_PRIO_NORMAL);
    turn(&fx);
    for (int i = 0; i < 10; i++)
        publish(&fx, "x", FR_PRIO_NORMAL);
    turn(&fx);
    check_evicted(&fx, &f, "lag", fx.metrics.evicted_lag);
    fx_close(&fx);
}

static void test_critical_is_never_dropped_silently(void) {
    fx_t fx;
    REQUIRE(fx_init(&fx) == 0);
    fake_t f;
    fr_tier_t t = tier(2, 100);
    REQUIRE(open_stream(&fx, &f, &fr_transport_sse, &t, FR_SLOW_DROP) != NULL);
    turn(&fx);
    f.stuck = 1;
    publish(&fx, "held", FR_PRIO_NORMAL);
    turn(&fx);
    for (int i = 0; i < 3; i++)
        publish(&fx, "alarm", FR_PRIO_CRITICAL);
    turn(&fx);
    CHECK_EQ_UINT(fx.metrics.dropped[FR_PRIO_CRITICAL], 0);
    check_evicted(&fx, &f, "drop", fx.metrics.evicted_drop);
    fx_close(&fx);
}

/* A long-poll answers once, with a length, and lets the connection carry the next request. */
static void test_long_poll_answers_whole(void) {
    fx_t fx;
    REQUIRE(fx_init(&fx) == 0);
    fake_t f;
    fr_tier_t t = tier(16, 100);
    REQUIRE(open_stream(&fx, &f, &fr_transport_poll, &t, FR_SLOW_DROP) != NULL);
    turn(&fx);
    CHECK_EQ_INT(f.status, 0); /* nothing to say yet: no head */
    publish(&fx, "one", FR_PRIO_NORMAL);
    publish(&fx, "two", FR_PRIO_NORMAL);
    turn(&fx);
    CHECK_EQ_INT(f.status, 200);
    CHECK_EQ_INT(f.length, (int64_t)f.len);
    char seen[256];
    data_seen(&f, seen, sizeof seen);
    CHECK_EQ_STR(seen, "one two");
    CHECK(f.ended && f.reuse);
    CHECK_EQ_UINT(fx.env.count, 0);
    fx_close(&fx);
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_events_in_order);
    FR_RUN(test_full_socket_drops_and_reports);
    FR_RUN(test_conflate_keeps_the_newest);
    FR_RUN(test_disconnect_policy);
    FR_RUN(test_lag_cut_off);
    FR_RUN(test_critical_is_never_dropped_silently);
    FR_RUN(test_long_poll_answers_whole);
    return FR_TEST_END();
}
