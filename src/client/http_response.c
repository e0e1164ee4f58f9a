/* An HTTP/1.1 response read with llhttp: see client/http_response.h. */
#include "client/http_response.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"

static fr_hres_t *res_of(llhttp_t *p) {
    return p->data;
}

static fr_hres_span_t *last_span(fr_hres_t *r) {
    return &r->spans[r->nspans - 1];
}

/* Clears what an interim response left, so the final one starts empty. */
static void clear_message(fr_hres_t *r) {
    r->text.len = 0;
    r->body.len = 0;
    r->nspans = 0;
    r->part = 0;
    r->in_trailers = 0;
}

/* ---- header fields: llhttp hands names and values over in as many pieces as reads cut --- */

/* RFC 9110 §5.6.2 tchar. llhttp lets some other bytes through in names; a script that
 * compares names should never meet them. */
static int is_tchar(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* part: 0 between headers, 1 in a name, 2 in a value. llhttp emits no piece for an empty
 * name, so a name that completes without one (": value") is refused here. */
static int on_header_field(llhttp_t *p, const char *at, size_t len) {
    fr_hres_t *r = res_of(p);
    for (size_t i = 0; i < len; i++)
        if (!is_tchar((unsigned char)at[i]))
            return -1;
    if (r->in_trailers || len == 0)
        return 0;
    if (r->part == 0) {
        if (r->nspans == r->cap_spans) {
            r->cap_spans = r->cap_spans ? r->cap_spans * 2 : 16;
            r->spans = fr_realloc(r->spans, r->cap_spans * sizeof *r->spans);
        }
        r->spans[r->nspans++] = (fr_hres_span_t){r->text.len, 0, 0, 0};
        r->part = 1;
    }
    size_t from = r->text.len;
    fr_buf_put(&r->text, at, len);
    for (size_t i = from; i < r->text.len; i++) {
        char c = r->text.p[i];
        if (c >= 'A' && c <= 'Z')
            r->text.p[i] = (char)(c - 'A' + 'a');
    }
    return 0;
}

static int on_header_field_complete(llhttp_t *p) {
    fr_hres_t *r = res_of(p);
    if (r->in_trailers)
        return 0;
    if (r->part != 1)
        return -1;
    fr_hres_span_t *s = last_span(r);
    s->name_len = r->text.len - s->name;
    fr_buf_putc(&r->text, '\0');
    s->value = r->text.len;
    r->part = 2;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
    fr_hres_t *r = res_of(p);
    /* Values reach scripts as strings: no line breaks or NUL, whatever the parser allows. */
    for (size_t i = 0; i < len; i++)
        if (at[i] == '\r' || at[i] == '\n' || at[i] == '\0')
            return -1;
    if (r->in_trailers)
        return 0;
    if (r->part != 2)
        return -1;
    fr_buf_put(&r->text, at, len);
    return 0;
}

/* A value keeps no blanks at its ends (RFC 9110 §5.5); llhttp drops the leading ones. */
static int on_header_value_complete(llhttp_t *p) {
    fr_hres_t *r = res_of(p);
    if (r->in_trailers)
        return 0;
    if (r->part != 2)
        return -1;
    fr_hres_span_t *s = last_span(r);
    while (r->text.len > s->value &&
           (r->text.p[r->text.len - 1] == ' ' || r->text.p[r->text.len - 1] == '\t'))
        r->text.len--;
    s->value_len = r->text.len - s->value;
    fr_buf_putc(&r->text, '\0');
    r->part = 0;
    return 0;
}

/* ---- the message ---------------------------------------------------------------------------- */

/* Returns 1 (no body) where RFC 9112 §6.3 says none follows whatever the headers say: a
 * response to HEAD, 1xx, 204 and 304. llhttp alone would wait for the Content-Length of a 304,
 * which a server may send as the length the full answer would have. */
static int on_headers_complete(llhttp_t *p) {
    fr_hres_t *r = res_of(p);
    if (r->part != 0)
        return -1;
    r->in_trailers = 1;
    int status = p->status_code;
    /* We never ask to switch protocols, and only HTTP/1 is spoken here. */
    if (p->http_major != 1 || status < 100 || status == 101)
        return -1;
    if (r->head || status < 200 || status == 204 || status == 304)
        return 1;
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
    fr_buf_put(&res_of(p)->body, at, len);
    return 0;
}

/* The final response stops the parser right after its last byte, so the caller learns where it
 * ended; an interim one is dropped and reading goes on. */
static int on_message_complete(llhttp_t *p) {
    fr_hres_t *r = res_of(p);
    if (p->status_code < 200) {
        clear_message(r);
        return 0;
    }
    r->keep_alive = (unsigned char)llhttp_should_keep_alive(p);
    r->state = FR_HRES_DONE;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- the reader ----------------------------------------------------------------------------- */

void fr_hres_init(fr_hres_t *r, size_t limit, int head) {
    memset(r, 0, sizeof *r);
    llhttp_init(&r->parser, HTTP_RESPONSE, &settings);
    r->parser.data = r;
    r->limit = limit ? limit : 1;
    r->head = head ? 1 : 0;
}

void fr_hres_free(fr_hres_t *r) {
    fr_buf_free(&r->text);
    fr_buf_free(&r->body);
    free(r->spans);
    free(r->headers);
    r->spans = NULL;
    r->headers = NULL;
    r->nspans = r->cap_spans = 0;
}

static fr_hres_state_t fail(fr_hres_t *r, const char *why) {
    r->state = FR_HRES_FAIL;
    r->err = why;
    return r->state;
}

/* Points the response at the text, now that it no longer moves. */
static fr_hres_state_t complete(fr_hres_t *r) {
    r->headers = r->nspans ? fr_malloc(r->nspans * sizeof *r->headers) : NULL;
    for (size_t i = 0; i < r->nspans; i++) {
        const fr_hres_span_t *s = &r->spans[i];
        r->headers[i] = (fr_hheader_t){r->text.p + s->name, r->text.p + s->value, s->name_len,
                                       s->value_len};
    }
    r->res.status = r->parser.status_code;
    r->res.headers = r->headers;
    r->res.nheaders = r->nspans;
    r->res.body = r->body.p ? r->body.p : "";
    r->res.body_len = r->body.len;
    r->state = FR_HRES_DONE;
    return r->state;
}

fr_hres_state_t fr_hres_feed(fr_hres_t *r, const char *data, size_t len, size_t *used) {
    *used = 0;
    if (r->state != FR_HRES_MORE)
        return r->state;
    /* llhttp sees no byte past the limit: what is over it is never read, let alone kept. */
    size_t room = r->limit - r->seen;
    size_t n = len < room ? len : room;
    llhttp_errno_t e = n ? llhttp_execute(&r->parser, data, n) : HPE_OK;
    if (r->state == FR_HRES_DONE) {
        const char *at = llhttp_get_error_pos(&r->parser);
        size_t took = at && at >= data && at <= data + n ? (size_t)(at - data) : n;
        r->seen += took;
        *used = took;
        r->leftover = took < len;
        return complete(r);
    }
    if (e != HPE_OK)
        return fail(r, "invalid response");
    r->seen += n;
    *used = n;
    if (n < len)
        return fail(r, "response too large");
    return FR_HRES_MORE;
}

fr_hres_state_t fr_hres_eof(fr_hres_t *r) {
    if (r->state != FR_HRES_MORE)
        return r->state;
    /* Completes a body that runs to the close (on_message_complete); anything else cut short
     * is an error, and a close between messages completes nothing. */
    llhttp_finish(&r->parser);
    if (r->state == FR_HRES_DONE) {
        r->keep_alive = 0;
        return complete(r);
    }
    return fail(r, "connection closed");
}

const fr_hresponse_t *fr_hres_response(const fr_hres_t *r) {
    return r->state == FR_HRES_DONE ? &r->res : NULL;
}

int fr_hres_reusable(const fr_hres_t *r) {
    return r->state == FR_HRES_DONE && r->keep_alive && !r->leftover;
}
