/* Refusing a stream request for now: the one place such answers are made, counted and logged.
 *
 * A browser's EventSource treats any status but 200 as final: it "fails the connection" and
 * never comes back until the page reloads. A refusal that only means "not now" (429, 503, 504)
 * would switch a tab off for good. Such a request gets instead:
 *
 *   HTTP/1.1 200 OK                        Content-Type: text/event-stream, a length, close
 *   retry: 5731                            the delay, with jitter, before it reconnects
 *   event: freshet-refused                 a listener can show why
 *   data: {"reason":"fd_limit","status":503,"retry_ms":5731,"error":"…"}
 *                                          then the end of the body: the browser reconnects
 *
 * No `id:` line: the browser keeps its Last-Event-ID, and the next attempt resumes exactly.
 * Clients that read statuses (curl, the JavaScript client, long-poll, WebSocket) get the
 * status with Retry-After. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "base/json.h"
#include "base/log.h"
#include "base/util.h"

static const char *const reason_names[FR_REFUSAL_COUNT] = {
    "fd_limit", "rate_limit", "broker_unavailable", "shutting_down", "hook_timeout", "route"};

/* The delay before the next attempt: Retry-After's seconds (else the app's retry), plus up to
 * half of it again, so a crowd refused together does not come back together. */
static unsigned long retry_with_jitter(const fr_app_t *app, unsigned retry_after_s) {
    unsigned long base = retry_after_s ? retry_after_s * 1000ul : (unsigned long)app->config->retry_ms;
    if (base == 0)
        base = 1000;
    return base + (unsigned long)rand() % (base / 2 + 1);
}

static void respond_in_band(fr_app_t *app, fr_exchange_t *x, fr_refusal_t why, int status,
                            unsigned retry_after_s, const char *msg) {
    unsigned long retry = retry_with_jitter(app, retry_after_s);
    char error[512];
    fr_json_write_string(error, sizeof error, msg, strlen(msg));
    char body[768];
    int n = snprintf(body, sizeof body,
                     "retry: %lu\nevent: freshet-refused\n"
                     "data: {\"reason\":\"%s\",\"status\":%d,\"retry_ms\":%lu,\"error\":%s}\n\n",
                     retry, reason_names[why], status, retry, error);
    if (n < 0 || (size_t)n >= sizeof body)
        n = (int)sizeof body - 1;
    x->last = 1;
    fr_exchange_respond(x, 200, "text/event-stream; charset=utf-8", "Cache-Control: no-cache\r\n",
                        body, (size_t)n);
    FR_BUMP(app->metrics->refused_in_band, 1);
}

static void respond_status(fr_exchange_t *x, int status, unsigned retry_after_s,
                           const char *msg) {
    size_t len;
    char *body = fr_http_error_body(msg, &len);
    char headers[48] = "";
    if (retry_after_s)
        snprintf(headers, sizeof headers, "Retry-After: %u\r\n", retry_after_s);
    fr_exchange_respond(x, status, "application/json", headers[0] ? headers : NULL, body, len);
    free(body);
}

void fr_app_refuse_stream(fr_app_t *app, fr_exchange_t *x, int in_band, fr_refusal_t why,
                          int status, unsigned retry_after_s, const char *msg) {
    /* A refusal at the descriptor limit hands its descriptor back at once; a failed join
     * leaves the connection in an unknown state. */
    if (why == FR_REFUSAL_FDS || why == FR_REFUSAL_BROKER || why == FR_REFUSAL_DRAIN)
        x->last = 1;
    if (in_band)
        respond_in_band(app, x, why, status, retry_after_s, msg);
    else
        respond_status(x, status, retry_after_s, msg);
    app->unlogged[why]++;
    fr_app_refusals_flush(app);
}

void fr_app_refusals_flush(fr_app_t *app) {
    unsigned long total = 0;
    for (int i = 0; i < FR_REFUSAL_COUNT; i++)
        total += app->unlogged[i];
    uint64_t now = fr_mono_ms();
    if (total == 0 || (app->refusals_logged_ms && now - app->refusals_logged_ms < 1000))
        return;
    char counts[256];
    size_t off = 0;
    for (int i = 0; i < FR_REFUSAL_COUNT; i++) {
        if (!app->unlogged[i])
            continue;
        int n = snprintf(counts + off, sizeof counts - off, "%s%s %lu", off ? ", " : "",
                         reason_names[i], app->unlogged[i]);
        if (n > 0 && (size_t)n < sizeof counts - off)
            off += (size_t)n;
        app->unlogged[i] = 0;
    }
    fr_fds_view_t v;
    app->host->fds(app->host_ctx, &v);
    fr_warn("refused %lu new stream%s (%s); streams %zu of %zu, descriptors %zu of %zu", total,
            total == 1 ? "" : "s", counts, v.streams, v.capacity, v.in_use, v.limit);
    app->refusals_logged_ms = now;
}
