/* Text and JSON renderings of a run's result; see report.h. */
#include "report.h"

#include <inttypes.h>
#include <string.h>

static double ms(uint64_t ns) {
    return (double)ns / 1e6;
}

/* http_errors are not added: a non-200 answer ends the stream before it starts, so it is
 * already one of connect_failed. */
uint64_t fr_result_errors(const fr_result_t *r) {
    return r->c.connect_failed + r->c.disconnects + r->c.parse_errors + r->c.wrong_topic +
           r->publish_errors + r->c.storm_failed;
}

static uint64_t missing(const fr_result_t *r) {
    return r->c.expected > r->c.delivered ? r->c.expected - r->c.delivered : 0;
}

static double per_s(const fr_result_t *r) {
    return r->measured_s > 0 ? (double)r->c.delivered / r->measured_s : 0;
}

static double events_per_read(const fr_result_t *r) {
    return r->c.reads ? (double)(r->c.delivered + r->c.warmup_delivered) / (double)r->c.reads : 0;
}

static int have_server(const fr_result_t *r) {
    return r->server && r->srv_start.ok && r->srv_end.ok;
}

/* Server CPU from measure start to the end of the tail. */
static double cpu_s(const fr_result_t *r) {
    const fr_procstat_t *from = r->srv_measure.ok ? &r->srv_measure : &r->srv_ready;
    return r->srv_end.cpu_s - from->cpu_s;
}

static double cpu_pct(const fr_result_t *r) {
    const fr_procstat_t *from = r->srv_measure.ok ? &r->srv_measure : &r->srv_ready;
    double wall = (double)(r->srv_end.at - from->at) / 1e9;
    return wall > 0 ? 100.0 * cpu_s(r) / wall : 0;
}

static double rss_per_stream_kb(const fr_result_t *r) {
    if (!r->c.ready || !r->srv_ready.ok)
        return 0;
    return (double)(r->srv_ready.rss_kb - r->srv_start.rss_kb) / (double)r->c.ready;
}

static int have_pss(const fr_result_t *r) {
    return r->srv_start.pss_kb >= 0 && r->srv_ready.pss_kb >= 0 && r->srv_end.pss_kb >= 0;
}

static double pss_per_stream_kb(const fr_result_t *r) {
    if (!r->c.ready || !r->srv_ready.ok || !have_pss(r))
        return 0;
    return (double)(r->srv_ready.pss_kb - r->srv_start.pss_kb) / (double)r->c.ready;
}

/* "pid 12" or "pids 12,13,14". */
static void pid_text(char *out, size_t cap, const fr_opts_t *o) {
    size_t n = (size_t)snprintf(out, cap, "pid%s ", o->nserver_pids > 1 ? "s" : "");
    for (uint32_t i = 0; i < o->nserver_pids && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%d", i ? "," : "", o->server_pids[i]);
}

static void storm_text(FILE *out, const fr_result_t *r) {
    const fr_counters_t *c = &r->c;
    fprintf(out, "  storm         %" PRIu64 " streams dropped at once (%" PRIu64 " without an id): ",
            c->storm_dropped, c->storm_no_id);
    if (c->storm_dropped && c->storm_live == c->storm_dropped)
        fprintf(out, "all live again after %.3f s", (double)c->storm_live_max / 1e9);
    else
        fprintf(out, "%" PRIu64 " live again (the last after %.3f s)", c->storm_live,
                (double)c->storm_live_max / 1e9);
    fprintf(out, " (each: p50 %.3f ms, p99 %.3f ms), %" PRIu64 " failed\n",
            ms(fr_hist_quantile(&r->storm, 0.5)), ms(fr_hist_quantile(&r->storm, 0.99)),
            c->storm_failed);
    fprintf(out,
            "                %" PRIu64 " caught up (the last after %.3f s); after the reconnect "
            "%" PRIu64 " gaps, %" PRIu64 " duplicates, %" PRIu64 " out of order\n",
            c->storm_caught_up, (double)c->storm_catchup_max / 1e9, c->storm_gaps,
            c->storm_duplicates, c->storm_out_of_order);
}

static void storm_json(FILE *out, const fr_result_t *r) {
    const fr_counters_t *c = &r->c;
    const fr_hist_t *h = &r->storm;
    if (!r->opts->storm) {
        fprintf(out, "\"storm\":null,");
        return;
    }
    fprintf(out, "\"storm\":{\"dropped\":%" PRIu64 ",\"without_id\":%" PRIu64 ",\"live\":%" PRIu64
                 ",\"failed\":%" PRIu64 ",\"storm_s\":",
            c->storm_dropped, c->storm_no_id, c->storm_live, c->storm_failed);
    if (c->storm_dropped && c->storm_live == c->storm_dropped)
        fprintf(out, "%.3f", (double)c->storm_live_max / 1e9);
    else
        fprintf(out, "null");
    fprintf(out, ",\"reconnect_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f},",
            ms(fr_hist_quantile(h, 0.5)), ms(fr_hist_quantile(h, 0.99)), ms(h->max));
    fprintf(out, "\"caught_up\":%" PRIu64 ",\"catchup_s\":", c->storm_caught_up);
    if (c->storm_dropped && c->storm_caught_up == c->storm_dropped)
        fprintf(out, "%.3f", (double)c->storm_catchup_max / 1e9);
    else
        fprintf(out, "null");
    fprintf(out,
            ",\"gaps\":%" PRIu64 ",\"duplicates\":%" PRIu64 ",\"out_of_order\":%" PRIu64 "},",
            c->storm_gaps, c->storm_duplicates, c->storm_out_of_order);
}

void fr_report_text(FILE *out, const fr_result_t *r) {
    const fr_opts_t *o = r->opts;
    char rate[32];
    if (o->rate > 0)
        snprintf(rate, sizeof rate, "%g publishes/s", o->rate);
    else
        snprintf(rate, sizeof rate, "publishing flat out");
    fprintf(out,
            "====== freshet-bench: %u %s subscribers, %u topic%s, %s, %g s (+%g s warmup), "
            "%u-byte payloads ======\n",
            o->subscribers,
            o->ws ? (o->tls ? "WebSocket (TLS)" : "WebSocket") : (o->tls ? "SSE (TLS)" : "SSE"),
            o->topics, o->topics == 1 ? "" : "s", rate, o->duration, o->warmup, o->payload);
    if (r->interrupted)
        fprintf(out, "  (interrupted: figures cover the run so far)\n");
    fprintf(out,
            "  connect       %" PRIu64 " streams ready in %.2f s over %u process%s, %" PRIu64
            " failed; p50 %.3f ms, p99 %.3f ms, max %.3f ms\n",
            r->c.ready, r->connect_s, r->procs, r->procs == 1 ? "" : "es", r->c.connect_failed,
            ms(fr_hist_quantile(&r->connect, 0.5)), ms(fr_hist_quantile(&r->connect, 0.99)),
            ms(r->connect.max));
    fprintf(out,
            "  publish       %" PRIu64 " measured (+%" PRIu64 " warmup) over %u connection%s x %u "
            "in flight, %" PRIu64 " errors, %" PRIu64 " never sent; answered p50 %.3f ms, "
            "p99 %.3f ms, max %.3f ms; at most %.1f ms behind schedule\n",
            r->published, r->warmup_published, o->pub_conns, o->pub_conns == 1 ? "" : "s",
            o->pipeline, r->publish_errors, r->publish_unsent, ms(fr_hist_quantile(&r->ack, 0.5)),
            ms(fr_hist_quantile(&r->ack, 0.99)), ms(r->ack.max), ms(r->lag_max_ns));
    fprintf(out,
            "  deliveries    %" PRIu64 " of %" PRIu64 " expected (%" PRIu64
            " missing), %.0f/s over %.2f s, %.2f events per read\n",
            r->c.delivered, r->c.expected, missing(r), per_s(r), r->measured_s, events_per_read(r));
    fprintf(out,
            "  latency       p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms\n",
            ms(fr_hist_quantile(&r->latency, 0.5)), ms(fr_hist_quantile(&r->latency, 0.9)),
            ms(fr_hist_quantile(&r->latency, 0.99)), ms(fr_hist_quantile(&r->latency, 0.999)),
            ms(r->latency.max));
    fprintf(out,
            "  integrity     %" PRIu64 " gaps, %" PRIu64 " duplicates, %" PRIu64
            " out of order, %" PRIu64 " of a wrong topic\n",
            r->c.gaps, r->c.duplicates, r->c.out_of_order, r->c.wrong_topic);
    char storm_failed[48] = "";
    if (o->storm) {
        storm_text(out, r);
        snprintf(storm_failed, sizeof storm_failed, ", storm reconnects %" PRIu64,
                 r->c.storm_failed);
    }
    fprintf(out,
            "  errors        %" PRIu64 " (connect %" PRIu64 " of which HTTP %" PRIu64
            ", disconnects %" PRIu64 ", parse %" PRIu64 ", publish %" PRIu64 "%s)\n",
            fr_result_errors(r), r->c.connect_failed, r->c.http_errors, r->c.disconnects,
            r->c.parse_errors, r->publish_errors, storm_failed);
    fprintf(out,
            "  also          %" PRIu64 " heartbeats, %" PRIu64 " dropped notices, %" PRIu64
            " foreign events, %.1f MB read\n",
            r->c.heartbeats, r->c.dropped_notices, r->c.other_events, (double)r->c.bytes / 1e6);
    char pids[FR_MAX_SERVER_PIDS * 12 + 8];
    pid_text(pids, sizeof pids, o);
    if (have_server(r)) {
        fprintf(out,
                "  server        %s: RSS %ld KB before, %ld KB connected (%.2f KB per "
                "stream), %ld KB at the end; CPU %.1f%% (%.2f s)\n",
                pids, r->srv_start.rss_kb, r->srv_ready.rss_kb, rss_per_stream_kb(r),
                r->srv_end.rss_kb, cpu_pct(r), cpu_s(r));
        if (o->nserver_pids > 1 && have_pss(r))
            fprintf(out,
                    "                summed over the PIDs; PSS %ld KB before, %ld KB connected "
                    "(%.2f KB per stream), %ld KB at the end\n",
                    r->srv_start.pss_kb, r->srv_ready.pss_kb, pss_per_stream_kb(r),
                    r->srv_end.pss_kb);
    } else if (r->server) {
        fprintf(out, "  server        %s could not be read from /proc\n", pids);
    }
    if (r->first_error[0])
        fprintf(out, "  first error   %s\n", r->first_error);
}

static void json_string(FILE *out, const char *s) {
    fputc('"', out);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(out, "\\u%04x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

void fr_report_json(FILE *out, const fr_result_t *r) {
    const fr_opts_t *o = r->opts;
    const fr_hist_t *l = &r->latency, *c = &r->connect, *a = &r->ack;
    fprintf(out, "{\"tool\":\"freshet-bench\",\"version\":\"%s\",", FR_BENCH_VERSION);
    fprintf(out,
            "\"transport\":\"%s\",\"tls\":%s,\"subscribers\":%u,\"topics\":%u,\"procs\":%u,"
            "\"rate\":%g,\"duration_s\":%g,\"warmup_s\":%g,\"payload_bytes\":%u,\"pipeline\":%u,"
            "\"pub_conns\":%u,\"sources\":%u,",
            o->ws ? "ws" : "sse", o->tls ? "true" : "false", o->subscribers, o->topics, r->procs,
            o->rate, o->duration, o->warmup, o->payload, o->pipeline, o->pub_conns,
            o->src_count ? o->src_count : 1);
    fprintf(out, "\"connected\":%" PRIu64 ",\"connect_failed\":%" PRIu64 ",\"connect_s\":%.3f,",
            r->c.ready, r->c.connect_failed, r->connect_s);
    fprintf(out, "\"connect_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f},",
            ms(fr_hist_quantile(c, 0.5)), ms(fr_hist_quantile(c, 0.99)), ms(c->max));
    fprintf(out,
            "\"published\":%" PRIu64 ",\"warmup_published\":%" PRIu64 ",\"publish_ok\":%" PRIu64
            ",\"publish_errors\":%" PRIu64 ",\"publish_unsent\":%" PRIu64
            ",\"publisher_lag_max_ms\":%.3f,",
            r->published, r->warmup_published, r->publish_ok, r->publish_errors, r->publish_unsent,
            ms(r->lag_max_ns));
    fprintf(out, "\"publish_ack_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f},",
            ms(fr_hist_quantile(a, 0.5)), ms(fr_hist_quantile(a, 0.99)), ms(a->max));
    fprintf(out,
            "\"delivered\":%" PRIu64 ",\"expected\":%" PRIu64 ",\"missing\":%" PRIu64
            ",\"deliveries_per_s\":%.1f,\"measured_s\":%.3f,",
            r->c.delivered, r->c.expected, missing(r), per_s(r), r->measured_s);
    fprintf(out,
            "\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,"
            "\"max\":%.3f},",
            ms(fr_hist_quantile(l, 0.5)), ms(fr_hist_quantile(l, 0.9)),
            ms(fr_hist_quantile(l, 0.99)), ms(fr_hist_quantile(l, 0.999)), ms(l->max));
    fprintf(out,
            "\"gaps\":%" PRIu64 ",\"duplicates\":%" PRIu64 ",\"out_of_order\":%" PRIu64
            ",\"errors\":%" PRIu64 ",",
            r->c.gaps, r->c.duplicates, r->c.out_of_order, fr_result_errors(r));
    fprintf(out,
            "\"error_detail\":{\"connect_failed\":%" PRIu64 ",\"http_errors\":%" PRIu64
            ",\"disconnects\":%" PRIu64 ",\"parse_errors\":%" PRIu64 ",\"wrong_topic\":%" PRIu64
            ",\"publish_errors\":%" PRIu64 "},",
            r->c.connect_failed, r->c.http_errors, r->c.disconnects, r->c.parse_errors,
            r->c.wrong_topic, r->publish_errors);
    fprintf(out,
            "\"heartbeats\":%" PRIu64 ",\"dropped_notices\":%" PRIu64 ",\"other_events\":%" PRIu64
            ",\"bytes_read\":%" PRIu64 ",\"events_per_read\":%.3f,",
            r->c.heartbeats, r->c.dropped_notices, r->c.other_events, r->c.bytes,
            events_per_read(r));
    storm_json(out, r);
    if (have_server(r)) {
        double cs = cpu_s(r);
        fprintf(out, "\"server\":{\"pid\":%d,\"pids\":[", o->server_pid);
        for (uint32_t i = 0; i < o->nserver_pids; i++)
            fprintf(out, "%s%d", i ? "," : "", o->server_pids[i]);
        fprintf(out,
                "],\"rss_kb_start\":%ld,\"rss_kb_connected\":%ld,"
                "\"rss_kb_end\":%ld,\"rss_kb_per_stream\":%.3f,\"cpu_s\":%.2f,"
                "\"cpu_pct\":%.1f,\"cpu_us_per_delivery\":%.3f,",
                r->srv_start.rss_kb, r->srv_ready.rss_kb, r->srv_end.rss_kb,
                rss_per_stream_kb(r), cs, cpu_pct(r),
                r->c.delivered ? cs * 1e6 / (double)r->c.delivered : 0.0);
        if (have_pss(r))
            fprintf(out,
                    "\"pss_kb_start\":%ld,\"pss_kb_connected\":%ld,\"pss_kb_end\":%ld,"
                    "\"pss_kb_per_stream\":%.3f},",
                    r->srv_start.pss_kb, r->srv_ready.pss_kb, r->srv_end.pss_kb,
                    pss_per_stream_kb(r));
        else
            fprintf(out, "\"pss_kb_start\":null,\"pss_kb_connected\":null,\"pss_kb_end\":null,"
                         "\"pss_kb_per_stream\":null},");
    } else {
        fprintf(out, "\"server\":null,");
    }
    fprintf(out, "\"first_error\":");
    if (r->first_error[0])
        json_string(out, r->first_error);
    else
        fprintf(out, "null");
    fprintf(out, ",\"interrupted\":%s}\n", r->interrupted ? "true" : "false");
}
