/* Fuzz target: framing arbitrary events as Server-Sent Events and as WebSocket envelopes
 * (src/sse.h, src/event.h, src/ws_stream.h).
 *
 * Input: [flags][topic length][name length][topic][name][data…]. The event is built with
 * fr_event_new exactly as a publish would build it. Checked:
 *   - fr_event_new refuses exactly what a reference refuses: an empty topic, CR/LF/NUL in the
 *     topic or the event name, text that is not well-formed UTF-8 (refusal is the only
 *     acceptable answer to a value that would inject fields);
 *   - an accepted event's frame holds no CR and only id/event/data lines and the blank line
 *     that ends it, and a WHATWG parser reads back exactly one event with the id, the name and
 *     the data's lines joined by LF (CR, LF and CRLF in the data each end one line);
 *   - the body after body_off, sent behind a multi-topic stream's own id line, reads the same;
 *   - fr_sse_body_size is exactly what fr_sse_body_write writes;
 *   - the WebSocket envelope is one unmasked final text frame whose payload is JSON that
 *     decodes to the same topic, id, name and data (for text data). */
#include <stdint.h>
#include <string.h>

#include "core/event.h"
#include "fuzz_common.h"
#include "codec/ids.h"
#include "codec/sse.h"
#include "codec/ws.h"
#include "transport/ws.h"

static int ref_field_ok(const char *s, size_t n) {
    return !memchr(s, '\r', n) && !memchr(s, '\n', n) && !memchr(s, '\0', n) && fz_utf8_ok(s, n);
}

/* The data as a client reads it back: each CR, LF or CRLF ends a line; lines joined by LF. */
static void expected_data(const char *d, size_t n, fz_buf_t *out) {
    out->len = 0;
    fz_put(out, "", 0);
    for (size_t i = 0; i < n; i++) {
        if (d[i] == '\r') {
            fz_putc(out, '\n');
            if (i + 1 < n && d[i + 1] == '\n')
                i++;
        } else {
            fz_putc(out, d[i]);
        }
    }
}

static void check_sse(const char *what, const char *frame, size_t len, const char *want_id,
                      const char *name, const fz_buf_t *want_data) {
    const char *bad = fz_sse_lines_ok(frame, len);
    if (bad) {
        fz_dump("frame", frame, len);
        fz_fail("%s: %s", what, bad);
    }
    fz_expect(len >= 2 && frame[len - 1] == '\n' && frame[len - 2] == '\n',
              "%s: the frame does not end with a blank line", what);
    fz_sse_t p = {0};
    size_t rest = fz_sse_feed(&p, frame, len);
    fz_expect(rest == 0, "%s: frame ends inside a line", what);
    if (p.events != 1 || p.other || p.comments || p.bad_retry) {
        fz_dump("frame", frame, len);
        fz_fail("%s: a client reads %zu events, %zu unknown fields, %zu comments", what,
                p.events, p.other, p.comments);
    }
    fz_expect(p.ev_had_id && p.ev_id.len == strlen(want_id) &&
                  memcmp(p.ev_id.p, want_id, p.ev_id.len) == 0,
              "%s: the id a client reads is not the event's", what);
    const char *type = name && *name ? name : "message";
    if (p.ev_type.len != strlen(type) || memcmp(p.ev_type.p, type, p.ev_type.len) != 0) {
        fz_dump("frame", frame, len);
        fz_fail("%s: the event type a client reads is not the event's name", what);
    }
    if (p.ev_data.len != want_data->len || memcmp(p.ev_data.p, want_data->p, want_data->len)) {
        fz_dump("frame", frame, len);
        fz_dump("read back", p.ev_data.p, p.ev_data.len);
        fz_dump("expected", want_data->p, want_data->len);
        fz_fail("%s: the data a client reads is not the event's data", what);
    }
    fz_sse_free(&p);
}

static void check_member(const char *payload, size_t n, const char *key, const char *want,
                         size_t want_len) {
    fz_buf_t got = {0};
    int set = 0, is_string = 0;
    size_t vs, ve;
    fz_expect(fz_json_member(payload, n, key, &got, &set, &is_string, &vs, &ve),
              "the WebSocket envelope is not valid JSON");
    if (!want) {
        fz_expect(!set, "the envelope has a \"%s\" the event does not", key);
    } else if (!set || !is_string || got.len != want_len || memcmp(got.p, want, want_len) != 0) {
        fz_dump("envelope", payload, n);
        fz_fail("the envelope's \"%s\" does not decode to the event's", key);
    }
    fz_buf_free(&got);
}

static void check_ws(fr_event_t *ev, const char *id, size_t id_len, const char *frame,
                     size_t len) {
    fz_expect(len >= 2, "envelope frame too short");
    const uint8_t *f = (const uint8_t *)frame;
    fz_expect(f[0] == 0x81, "the envelope is not one final text frame");
    fz_expect(!(f[1] & 0x80), "a server frame is masked");
    uint64_t plen = f[1] & 0x7F;
    size_t hl = 2;
    if (plen == 126) {
        fz_expect(len >= 4, "short 16-bit length");
        plen = (uint64_t)f[2] << 8 | f[3];
        hl = 4;
        fz_expect(plen > 125, "a longer length form than needed");
    } else if (plen == 127) {
        fz_expect(len >= 10, "short 64-bit length");
        plen = 0;
        for (int k = 0; k < 8; k++)
            plen = plen << 8 | f[2 + k];
        hl = 10;
        fz_expect(plen > 0xFFFF, "a longer length form than needed");
    }
    fz_expect(hl + plen == len, "the frame length does not match its header");
    const char *payload = frame + hl;
    size_t n = (size_t)plen;
    fz_expect(fz_utf8_ok(payload, n), "the envelope text is not UTF-8");
    check_member(payload, n, "topic", ev->topic, strlen(ev->topic));
    check_member(payload, n, "id", id, id_len);
    check_member(payload, n, "event", ev->name, ev->name ? strlen(ev->name) : 0);
    check_member(payload, n, "data", ev->data, ev->data_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_reader_t r = {data, size, 0};
    uint8_t flags = fz_u8(&r);
    size_t tl = fz_u8(&r) % 48, nl = fz_u8(&r) % 48, got;
    const char *tp = (const char *)fz_take(&r, tl, &got);
    tl = got;
    const char *np = (const char *)fz_take(&r, nl, &got);
    nl = got;
    const char *dp = (const char *)fz_take(&r, fz_left(&r), &got);
    size_t dl = got;

    /* Topic and name are C strings in freshet (they come from Lua strings); give them as such,
     * cut at a NUL the way a C caller would see them. */
    char topic[64], name[64];
    memcpy(topic, tp, tl);
    topic[tl] = '\0';
    memcpy(name, np, nl);
    name[nl] = '\0';
    size_t topic_len = strlen(topic), name_len = strlen(name);
    const char *name_arg = (flags & 1) ? NULL : name;

    fr_id_t id = {((uint64_t)flags << 40) | (uint64_t)dl, (uint64_t)tl * 7 + nl};
    fr_priority_t prio = (fr_priority_t)((flags >> 1) % 3);
    const char *err = NULL;
    fr_event_t *ev = fr_event_new(topic, id, name_arg, dp, dl, prio, 0, 1, &err);

    int ref_ok = topic_len > 0 && ref_field_ok(topic, topic_len) &&
                 (!name_arg || ref_field_ok(name, name_len)) && fz_utf8_ok(dp, dl);
    if (!ev) {
        if (ref_ok) {
            fz_dump("topic", topic, topic_len);
            fz_dump("name", name, name_len);
            fz_dump("data", dp, dl);
            fz_fail("fr_event_new refused an event the reference accepts: %s", err);
        }
        fz_expect(err && *err, "a refusal without a message");
        fz_expect(fr_event_validate(topic, name_arg, dp, dl, &err) < 0,
                  "fr_event_validate accepts what fr_event_new refused");
        return 0;
    }
    if (!ref_ok) {
        fz_dump("topic", topic, topic_len);
        fz_dump("name", name, name_len);
        fz_dump("data", dp, dl);
        fz_fail("fr_event_new accepted what would break a stream (CR/LF/NUL or bad UTF-8)");
    }

    char idtext[FR_ID_MAX_LEN];
    size_t idlen = fr_id_format(id, idtext);
    fz_buf_t want = {0};
    expected_data(dp, dl, &want);

    /* The single-topic frame. */
    check_sse("frame", ev->frame, ev->frame_len, idtext, ev->name, &want);
    fz_expect(ev->body_off == 4 + idlen + 1 && memcmp(ev->frame, "id: ", 4) == 0,
              "the id line is not where body_off says");

    /* A multi-topic stream: its own id line, then the shared body. */
    static const fr_id_t positions[] = {{1, 0}, {2, 5}};
    char ids[64];
    size_t il = fr_ids_format(positions, 2, ids);
    fz_buf_t multi = {0};
    fz_put(&multi, "id: ", 4);
    fz_put(&multi, ids, il);
    fz_put(&multi, "\n", 1);
    fz_put(&multi, ev->frame + ev->body_off, ev->frame_len - ev->body_off);
    check_sse("multi-topic frame", multi.p, multi.len, ids, ev->name, &want);
    fz_buf_free(&multi);

    /* The codec alone: the size it announces is the size it writes. */
    size_t bsize = fr_sse_body_size(name_arg, name_arg ? name_len : 0, dp, dl);
    char *body = malloc(bsize + 1);
    body[bsize] = (char)0xEE;
    size_t wrote = fr_sse_body_write(body, name_arg, name_arg ? name_len : 0, dp, dl);
    fz_expect(wrote == bsize, "fr_sse_body_size says %zu, fr_sse_body_write wrote %zu", bsize,
              wrote);
    fz_expect((unsigned char)body[bsize] == 0xEE, "fr_sse_body_write wrote past its size");
    free(body);

    /* The WebSocket envelope, cached on the event and built with another id. */
    size_t wl;
    const char *wf = fr_ws_event_frame(ev, &wl);
    check_ws(ev, idtext, idlen, wf, wl);
    size_t wl2;
    const char *wf2 = fr_ws_event_frame(ev, &wl2);
    fz_expect(wf2 == wf && wl2 == wl, "the envelope was not cached on the event");
    char *other = fr_ws_event_frame_with_id(ev, "3-1,4-\"2", &wl2);
    check_ws(ev, "3-1,4-\"2", 8, other, wl2);
    free(other);

    fz_buf_free(&want);
    fr_event_release(ev);
    return 0;
}
