/* An HTTP/1.1 response read with llhttp (HTTP_RESPONSE mode), for the backend client.
 *
 *   bytes ──fr_hres_feed──► MORE … MORE ──► DONE (*used: where this response ended)
 *                             │                └─ FAIL: r->err ("invalid response",
 *   peer closed ──fr_hres_eof─┘                         "response too large",
 *                                                       "connection closed")
 *
 * Interim responses (1xx but 101) are read and dropped. The body ends by Content-Length, by
 * chunks, or with the connection (then only fr_hres_eof completes it). A response to HEAD, and
 * 1xx, 204 and 304 responses, have no body whatever their headers say. The byte limit counts
 * every byte read for the exchange (interim responses, head, chunk framing, body), so a peer
 * cannot make the reader hold or read more than that. */
#ifndef FR_HTTP_RESPONSE_H
#define FR_HTTP_RESPONSE_H

#include <llhttp.h>
#include <stddef.h>

#include "base/buf.h"
#include "client/http_client.h"

typedef enum { FR_HRES_MORE = 0, FR_HRES_DONE = 1, FR_HRES_FAIL = -1 } fr_hres_state_t;

/* Where one header's name and value sit in text (offsets: text moves as it grows). */
typedef struct {
    size_t name, name_len, value, value_len;
} fr_hres_span_t;

typedef struct {
    llhttp_t parser;
    fr_hres_state_t state;
    const char *err;           /* static; set with FR_HRES_FAIL */
    size_t limit, seen;        /* bytes allowed and read so far */
    fr_buf_t text;             /* owned: "name\0value\0" for each header, names lower-case */
    fr_hres_span_t *spans;     /* owned */
    size_t nspans, cap_spans;
    fr_buf_t body;             /* owned */
    fr_hheader_t *headers;     /* owned; built into text once the response is complete */
    fr_hresponse_t res;        /* points into text, headers and body once DONE */
    unsigned char head;        /* the request was HEAD: no body follows */
    unsigned char part;        /* what the last header callback read: 0, 1 name, 2 value */
    unsigned char in_trailers; /* past the body: trailer fields are read and dropped */
    unsigned char keep_alive;  /* the peer keeps the connection open after this response */
    unsigned char leftover;    /* bytes came after the response (the peer sent too much) */
} fr_hres_t;

/* head: the request was HEAD. limit: bytes the exchange may read (at least 1). */
void fr_hres_init(fr_hres_t *r, size_t limit, int head);
void fr_hres_free(fr_hres_t *r);

/* Reads the next bytes. MORE: all taken, the response goes on. DONE: the response is complete
 * and took *used bytes; what follows is not its. FAIL: r->err says why. Once DONE or FAIL, the
 * state stays and no byte is taken. */
fr_hres_state_t fr_hres_feed(fr_hres_t *r, const char *data, size_t len, size_t *used);

/* The peer closed its side: DONE for a body that runs to the close, else FAIL with
 * "connection closed" (a response cut short, or none at all). */
fr_hres_state_t fr_hres_eof(fr_hres_t *r);

/* The response once DONE (borrowed from r), else NULL. */
const fr_hresponse_t *fr_hres_response(const fr_hres_t *r);

/* 1 when the connection may carry another request: DONE, the peer keeps it alive and sent
 * nothing past the response. */
int fr_hres_reusable(const fr_hres_t *r);

#endif
