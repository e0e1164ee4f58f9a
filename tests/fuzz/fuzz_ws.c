/* Fuzz target: the WebSocket frame parser for client frames (src/ws.h), and the small codecs
 * beside it (accept key, close payload).
 *
 * Input: [max_size selector][split seed][frame bytes…]. The same bytes are parsed twice: once
 * as one read, once cut into reads at positions derived from the split seed. The parser's
 * contract is that frames split at any byte come out the same, so both runs must give the same
 * list of results (messages with their bytes, or the same error). Each result is also checked
 * on its own:
 *   - a text message is well-formed UTF-8 and a data message never exceeds max_size;
 *   - a close carries a code a close frame may carry (or 1005 for none) and a UTF-8 reason;
 *   - errors use 1002, 1007 or 1009 and are final: every later call repeats them, using no
 *     bytes. */
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "codec/sse.h"
#include "codec/ws.h"

#define MAX_RESULTS 4096

typedef struct {
    int rc;
    int opcode;
    uint16_t code;
    uint64_t hash; /* FNV-1a of the payload, and its length */
    size_t len;
} result_t;

static uint64_t fnv(const char *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void check_message(const fr_ws_parser_t *p, int rc, const fr_ws_msg_t *m) {
    fz_expect(m->data != NULL, "a message with NULL data");
    fz_expect(m->data[m->len] == '\0', "message data is not NUL-terminated");
    if (rc == FR_WS_ERROR) {
        fz_expect(m->close_code == FR_WS_CLOSE_PROTOCOL || m->close_code == FR_WS_CLOSE_INVALID ||
                      m->close_code == FR_WS_CLOSE_TOO_BIG,
                  "error with close code %u", m->close_code);
        fz_expect(m->reason && m->reason_len == strlen(m->reason) && m->reason_len <= 123,
                  "error reason unusable in a close frame");
        return;
    }
    switch (m->opcode) {
    case FR_WS_OP_TEXT:
        fz_expect(fz_utf8_ok(m->data, m->len), "a text message that is not UTF-8");
        /* fall through */
    case FR_WS_OP_BINARY:
        fz_expect(m->len <= p->max_size, "a %zu-byte message over max_size %zu", m->len,
                  p->max_size);
        break;
    case FR_WS_OP_PING:
    case FR_WS_OP_PONG:
        fz_expect(m->len <= 125, "a control frame over 125 bytes");
        break;
    case FR_WS_OP_CLOSE:
        fz_expect(m->len <= 125, "a close frame over 125 bytes");
        if (m->len == 0) {
            fz_expect(m->close_code == FR_WS_CLOSE_NO_STATUS, "empty close without 1005");
        } else {
            fz_expect(fr_ws_close_code_ok(m->close_code), "close code %u accepted",
                      m->close_code);
            fz_expect(m->reason == m->data + 2 && m->reason_len == m->len - 2,
                      "close reason is not the payload after the code");
            fz_expect(fz_utf8_ok(m->reason, m->reason_len), "close reason not UTF-8");
        }
        break;
    default:
        fz_fail("message with opcode %d", m->opcode);
    }
}

/* Parses data in reads that end at the given cut points; returns the number of results. */
static size_t run(const char *data, size_t len, size_t max_size, const size_t *cuts, size_t ncuts,
                  result_t *out) {
    fr_ws_parser_t p;
    fr_ws_parser_init(&p, max_size);
    size_t nres = 0, start = 0;
    int failed = 0, closed = 0;
    for (size_t c = 0; c <= ncuts && !failed && !closed; c++) {
        size_t end = c < ncuts ? cuts[c] : len;
        const char *d = data + start;
        size_t left = end - start;
        start = end;
        while (left > 0 && !failed && !closed && nres < MAX_RESULTS) {
            fr_ws_msg_t m;
            size_t used = 12345;
            int rc = fr_ws_parse(&p, d, left, &used, &m);
            fz_expect(used <= left, "consumed %zu of %zu bytes", used, left);
            if (rc == FR_WS_NEED_MORE) {
                fz_expect(used == left, "NEED_MORE left %zu bytes unused", left - used);
                left = 0;
                break;
            }
            check_message(&p, rc, &m);
            out[nres].rc = rc;
            out[nres].opcode = m.opcode;
            out[nres].code = m.close_code;
            out[nres].len = m.len;
            out[nres].hash = fnv(m.data, m.len);
            nres++;
            d += used;
            left -= used;
            if (rc == FR_WS_ERROR) {
                failed = 1;
                /* Errors are final and use nothing. */
                fr_ws_msg_t again;
                size_t used2 = 7;
                int rc2 = fr_ws_parse(&p, d, left, &used2, &again);
                fz_expect(rc2 == FR_WS_ERROR && used2 == 0 && again.close_code == m.close_code,
                          "a second call after an error did not repeat it");
            } else if (m.opcode == FR_WS_OP_CLOSE) {
                closed = 1; /* the connection reads nothing after a close */
            }
        }
    }
    fr_ws_parser_close(&p);
    return nres;
}

static void check_codecs(const uint8_t *data, size_t size) {
    /* The accept key: 28 base64 characters for a valid key, nothing written otherwise. */
    char acc[30];
    memset(acc, 'Z', sizeof acc);
    if (fr_ws_accept_key((const char *)data, size, acc) == 0) {
        fz_expect(acc[28] == '\0' && strlen(acc) == 28, "accept key is not 28 characters");
        for (int i = 0; i < 28; i++)
            fz_expect((acc[i] >= 'A' && acc[i] <= 'Z') || (acc[i] >= 'a' && acc[i] <= 'z') ||
                          (acc[i] >= '0' && acc[i] <= '9') || acc[i] == '+' || acc[i] == '/' ||
                          acc[i] == '=',
                      "accept key is not base64");
    }
    fz_expect(acc[29] == 'Z', "fr_ws_accept_key wrote past 29 bytes");
    /* A close payload from an arbitrary reason: at most 125 bytes, cut on a UTF-8 boundary. */
    if (size >= 2) {
        char reason[512];
        size_t n = size - 2 < sizeof reason - 1 ? size - 2 : sizeof reason - 1;
        memcpy(reason, data + 2, n);
        reason[n] = '\0';
        uint8_t out[126];
        out[125] = 0xEE;
        uint16_t code = (uint16_t)(data[0] << 8 | data[1]);
        size_t pl = fr_ws_close_payload(out, code, reason);
        fz_expect(out[125] == 0xEE && pl <= 125, "close payload over 125 bytes");
        if (code == 0 || code == FR_WS_CLOSE_NO_STATUS) {
            fz_expect(pl == 0, "close payload for code %u is not empty", code);
        } else {
            fz_expect(pl >= 2 && (out[0] << 8 | out[1]) == code, "close payload lost its code");
            if (fz_utf8_ok(reason, strlen(reason)))
                fz_expect(fz_utf8_ok(out + 2, pl - 2), "close reason cut inside a character");
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2)
        return 0;
    static const size_t sizes[] = {0, 1, 2, 3, 7, 125, 126, 127, 1000, 65535, 65536, 1 << 20};
    size_t max_size = sizes[data[0] % (sizeof sizes / sizeof sizes[0])];
    uint8_t seed = data[1];
    const char *bytes = (const char *)data + 2;
    size_t len = size - 2;

    static result_t whole[MAX_RESULTS], split[MAX_RESULTS];
    size_t nw = run(bytes, len, max_size, NULL, 0, whole);

    /* Cut points: every byte when the seed is 0, else a walk with steps from 1 to seed. */
    size_t *cuts = malloc((len + 1) * sizeof *cuts);
    size_t ncuts = 0;
    uint32_t x = seed * 2654435761u + 1;
    for (size_t pos = 1; pos < len;) {
        cuts[ncuts++] = pos;
        size_t step = 1;
        if (seed) {
            x = x * 1103515245u + 12345u;
            step = 1 + (x >> 16) % seed;
        }
        pos += step;
    }
    size_t ns = run(bytes, len, max_size, cuts, ncuts, split);
    free(cuts);

    if (nw != ns)
        fz_fail("one read gave %zu results, split reads %zu", nw, ns);
    for (size_t i = 0; i < nw; i++) {
        if (whole[i].rc != split[i].rc || whole[i].opcode != split[i].opcode ||
            whole[i].code != split[i].code || whole[i].len != split[i].len ||
            whole[i].hash != split[i].hash)
            fz_fail("result %zu differs between one read (rc %d op %d code %u len %zu) and split "
                    "reads (rc %d op %d code %u len %zu)",
                    i, whole[i].rc, whole[i].opcode, whole[i].code, whole[i].len, split[i].rc,
                    split[i].opcode, split[i].code, split[i].len);
    }
    check_codecs(data, size);
    return 0;
}
