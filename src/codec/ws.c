#include "codec/ws.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "base/util.h"

enum { ST_HEADER = 0, ST_PAYLOAD = 1 };

/* After a message larger than this, its buffer is freed instead of kept for the next one: most
 * connections send small messages, and one large message should not pin memory for the whole
 * life of the connection. */
#define KEEP_BUF_BYTES (64 * 1024)

void fr_ws_parser_init(fr_ws_parser_t *p, size_t max_size) {
    memset(p, 0, sizeof *p);
    /* One byte past the largest message holds its NUL, so that byte must be addressable. */
    p->max_size = max_size < SIZE_MAX ? max_size : SIZE_MAX - 1;
    p->_state = ST_HEADER;
    p->_hdr_need = 2;
}

void fr_ws_parser_close(fr_ws_parser_t *p) {
    free(p->_buf);
    p->_buf = NULL;
    p->_buf_len = p->_buf_cap = 0;
}

int fr_ws_close_code_ok(unsigned code) {
    /* 3000-3999 are registered for libraries and frameworks, 4000-4999 for private use. */
    if (code >= 3000 && code <= 4999)
        return 1;
    /* 1015 and everything above 1014 up to 2999 is unassigned or report-only. */
    if (code < 1000 || code > 1014)
        return 0;
    /* 1004 is reserved; 1005 and 1006 describe what happened locally and must not be sent. */
    return code != 1004 && code != 1005 && code != 1006;
}

/* Records the error so that every later call repeats it: the stream past a bad frame cannot
 * be resynchronised, and the caller may have more bytes queued from the same read. */
static int fail(fr_ws_parser_t *p, uint16_t code, const char *reason, fr_ws_msg_t *msg) {
    p->_err_code = code;
    p->_err_reason = reason;
    msg->opcode = 0;
    msg->data = "";
    msg->len = 0;
    msg->close_code = code;
    msg->reason = reason;
    msg->reason_len = strlen(reason);
    return FR_WS_ERROR;
}

/* Checks the first two header bytes and works out how many header bytes follow. Returns NULL,
 * or why the frame breaks the protocol. What these bytes alone decide is checked here, before
 * the length and mask arrive, so a bad frame is refused as early as possible. */
static const char *frame_start(fr_ws_parser_t *p) {
    uint8_t b0 = p->_hdr[0], b1 = p->_hdr[1];
    unsigned len7 = b1 & 0x7F;
    p->_fin = b0 >> 7;
    p->_op = b0 & 0x0F;
    /* No extension is ever negotiated, so no reserved bit has a meaning. */
    if (b0 & 0x70)
        return "reserved bits set";
    /* Masking keeps a client's bytes from looking like anything an intermediary would act on
     * (RFC 6455 §10.3); a server must refuse unmasked frames. */
    if (!(b1 & 0x80))
        return "client frame not masked";
    switch (p->_op) {
    case FR_WS_OP_CONT:
        if (!p->_msg_op)
            return "continuation frame without a message";
        break;
    case FR_WS_OP_TEXT:
    case FR_WS_OP_BINARY:
        if (p->_msg_op)
            return "new message inside a fragmented one";
        break;
    case FR_WS_OP_CLOSE:
    case FR_WS_OP_PING:
    case FR_WS_OP_PONG:
        if (!p->_fin)
            return "fragmented control frame";
        break;
    default:
        return "reserved opcode";
    }
    p->_hdr_need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4;
    return NULL;
}

/* The header is complete: reads the payload length and starts the payload. */
static int frame_ready(fr_ws_parser_t *p, fr_ws_msg_t *msg) {
    const uint8_t *h = p->_hdr;
    uint64_t n = h[1] & 0x7F;
    if (n == 126) {
        n = (uint64_t)h[2] << 8 | h[3];
    } else if (n == 127) {
        n = 0;
        for (int k = 0; k < 8; k++)
            n = n << 8 | h[2 + k];
        if (n >> 63)
            return fail(p, FR_WS_CLOSE_PROTOCOL, "64-bit length with the top bit set", msg);
    }
    /* Longer encodings than needed are allowed: RFC 6455 asks for the minimal one, but a
     * sender that pads its length field harms no one. So the limits on control frames apply to
     * the length, not to the 7-bit field. */
    if (p->_op & 8) {
        if (n > 125)
            return fail(p, FR_WS_CLOSE_PROTOCOL, "control frame over 125 bytes", msg);
        if (p->_op == FR_WS_OP_CLOSE && n == 1)
            return fail(p, FR_WS_CLOSE_PROTOCOL, "close frame with a 1-byte payload", msg);
    } else {
        /* Refused from the header alone, before any of the payload is buffered. */
        if (n > p->max_size - p->_buf_len)
            return fail(p, FR_WS_CLOSE_TOO_BIG, "message too big", msg);
        if (p->_op != FR_WS_OP_CONT) {
            p->_msg_op = p->_op;
            p->_utf8_need = 0;
        }
    }
    p->_frame_len = n;
    p->_frame_pos = 0;
    p->_state = ST_PAYLOAD;
    return FR_WS_NEED_MORE;
}

/* Makes room for n more message bytes and the NUL. Grows by doubling, so a message sent in
 * many small fragments costs linear time, but never past max_size + 1: the buffer follows the
 * bytes that arrived, not the length a header claims, so a peer cannot make the server
 * allocate memory by announcing a large frame and sending nothing. */
static void reserve(fr_ws_parser_t *p, size_t n) {
    size_t need = p->_buf_len + n + 1, limit = p->max_size + 1;
    if (need <= p->_buf_cap)
        return;
    size_t cap = p->_buf_cap ? p->_buf_cap : 256;
    while (cap < need)
        cap = cap > limit / 2 ? limit : cap * 2;
    if (cap > limit)
        cap = limit;
    p->_buf = fr_realloc(p->_buf, cap);
    p->_buf_cap = cap;
}

/* Checks text bytes as they arrive, carrying an unfinished sequence across calls and
 * fragments, so invalid text is refused at the first impossible byte rather than after the
 * whole message. The ranges are those of Unicode's well-formed byte sequences (Table 3-7):
 * they exclude overlong forms, surrogates and code points past U+10FFFF. Returns 0 on the
 * first byte that cannot continue valid UTF-8. */
static int utf8_feed(fr_ws_parser_t *p, const char *s, size_t n) {
    int need = p->_utf8_need, lo = p->_utf8_lo, hi = p->_utf8_hi;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (need) {
            if (c < lo || c > hi)
                return 0;
            need--;
            lo = 0x80;
            hi = 0xBF;
            continue;
        }
        if (c < 0x80)
            continue;
        lo = 0x80;
        hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0)
                lo = 0xA0; /* below is an overlong form */
            else if (c == 0xED)
                hi = 0x9F; /* above are the surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0)
                lo = 0x90; /* below is an overlong form */
            else if (c == 0xF4)
                hi = 0x8F; /* above is past U+10FFFF */
        } else {
            return 0;
        }
    }
    p->_utf8_need = need;
    p->_utf8_lo = lo;
    p->_utf8_hi = hi;
    return 1;
}

static int control_done(fr_ws_parser_t *p, fr_ws_msg_t *msg) {
    size_t len = (size_t)p->_frame_len;
    p->_ctrl[len] = '\0';
    msg->opcode = p->_op;
    msg->data = p->_ctrl;
    msg->len = len;
    if (p->_op != FR_WS_OP_CLOSE)
        return FR_WS_MESSAGE;
    if (len == 0) {
        msg->close_code = FR_WS_CLOSE_NO_STATUS;
        msg->reason = p->_ctrl;
        return FR_WS_MESSAGE;
    }
    unsigned code = (unsigned)(unsigned char)p->_ctrl[0] << 8 | (unsigned char)p->_ctrl[1];
    if (!fr_ws_close_code_ok(code))
        return fail(p, FR_WS_CLOSE_PROTOCOL, "invalid close code", msg);
    if (!fr_utf8_valid(p->_ctrl + 2, len - 2))
        return fail(p, FR_WS_CLOSE_INVALID, "close reason not valid UTF-8", msg);
    msg->close_code = (uint16_t)code;
    msg->reason = p->_ctrl + 2;
    msg->reason_len = len - 2;
    return FR_WS_MESSAGE;
}

static int message_done(fr_ws_parser_t *p, fr_ws_msg_t *msg) {
    if (p->_msg_op == FR_WS_OP_TEXT && p->_utf8_need)
        return fail(p, FR_WS_CLOSE_INVALID, "text ends inside a UTF-8 sequence", msg);
    msg->opcode = p->_msg_op;
    msg->data = "";
    msg->len = p->_buf_len;
    if (p->_buf) {
        p->_buf[p->_buf_len] = '\0';
        msg->data = p->_buf;
    }
    p->_msg_op = 0;
    p->_delivered = 1;
    return FR_WS_MESSAGE;
}

int fr_ws_parse(fr_ws_parser_t *p, const char *data, size_t len, size_t *consumed,
                fr_ws_msg_t *msg) {
    const uint8_t *in = (const uint8_t *)data;
    size_t i = 0;
    int rc = FR_WS_NEED_MORE;
    memset(msg, 0, sizeof *msg);
    msg->data = "";
    if (p->_err_code) {
        *consumed = 0;
        return fail(p, p->_err_code, p->_err_reason, msg);
    }
    /* The caller's borrow of the last data message ends now. */
    if (p->_delivered) {
        p->_delivered = 0;
        p->_buf_len = 0;
        if (p->_buf_cap > KEEP_BUF_BYTES) {
            free(p->_buf);
            p->_buf = NULL;
            p->_buf_cap = 0;
        }
    }
    for (;;) {
        if (p->_state == ST_HEADER) {
            while (p->_hdr_have < p->_hdr_need && i < len)
                p->_hdr[p->_hdr_have++] = in[i++];
            if (p->_hdr_have < p->_hdr_need)
                break;
            if (p->_hdr_have == 2) {
                const char *why = frame_start(p);
                if (why) {
                    rc = fail(p, FR_WS_CLOSE_PROTOCOL, why, msg);
                    break;
                }
                continue; /* the length and mask bytes follow */
            }
            if ((rc = frame_ready(p, msg)) != FR_WS_NEED_MORE)
                break;
        }

        /* Payload: unmask into the control buffer or onto the message being reassembled. The
         * mask byte depends on the position in the frame, not in this read, so frames split
         * at any byte come out the same. */
        uint64_t left = p->_frame_len - p->_frame_pos;
        size_t n = len - i < left ? len - i : (size_t)left;
        char *dst;
        if (p->_op & 8) {
            dst = p->_ctrl + p->_frame_pos;
        } else {
            reserve(p, n);
            dst = p->_buf + p->_buf_len;
        }
        const uint8_t *mask = p->_hdr + p->_hdr_need - 4;
        for (size_t k = 0; k < n; k++)
            dst[k] = (char)(in[i + k] ^ mask[(p->_frame_pos + k) & 3]);
        i += n;
        p->_frame_pos += n;
        if (!(p->_op & 8)) {
            p->_buf_len += n;
            if (p->_msg_op == FR_WS_OP_TEXT && !utf8_feed(p, dst, n)) {
                rc = fail(p, FR_WS_CLOSE_INVALID, "text not valid UTF-8", msg);
                break;
            }
        }
        if (p->_frame_pos < p->_frame_len)
            break;

        p->_state = ST_HEADER;
        p->_hdr_have = 0;
        p->_hdr_need = 2;
        if (p->_op & 8) {
            rc = control_done(p, msg);
            break;
        }
        if (p->_fin) {
            rc = message_done(p, msg);
            break;
        }
    }
    *consumed = i;
    return rc;
}

int fr_ws_accept_key(const char *client_key, size_t len, char out[29]) {
    const char *key = client_key;
    while (len && (*key == ' ' || *key == '\t')) {
        key++;
        len--;
    }
    while (len && (key[len - 1] == ' ' || key[len - 1] == '\t'))
        len--;
    /* 16 bytes encode as 22 characters and "==". The pad bits of the last character are not
     * required to be zero: the key is only hashed, never decoded, and any such key still
     * names 16 bytes. */
    if (len != 24 || key[22] != '=' || key[23] != '=')
        return -1;
    for (size_t i = 0; i < 22; i++) {
        char c = key[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/'))
            return -1;
    }
    unsigned char text[24 + sizeof FR_WS_GUID - 1];
    memcpy(text, key, 24);
    memcpy(text + 24, FR_WS_GUID, sizeof FR_WS_GUID - 1);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    /* Fails only when libcrypto itself is unusable; the handshake is refused then too. */
    if (!EVP_Digest(text, sizeof text, md, &md_len, EVP_sha1(), NULL) || md_len != 20)
        return -1;
    EVP_EncodeBlock((unsigned char *)out, md, 20);
    return 0;
}

size_t fr_ws_header(uint8_t out[10], int opcode, uint64_t payload_len, int fin) {
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
    if (payload_len <= 125) {
        out[1] = (uint8_t)payload_len;
        return 2;
    }
    if (payload_len <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(payload_len >> 8);
        out[3] = (uint8_t)payload_len;
        return 4;
    }
    out[1] = 127;
    for (int k = 0; k < 8; k++)
        out[2 + k] = (uint8_t)(payload_len >> (56 - 8 * k));
    return 10;
}

size_t fr_ws_close_payload(uint8_t out[125], uint16_t code, const char *reason) {
    if (code == 0 || code == FR_WS_CLOSE_NO_STATUS)
        return 0;
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    size_t n = reason ? strlen(reason) : 0;
    if (n > 123) {
        /* A control frame holds 125 bytes; cutting inside a character would make the peer
         * fail the connection with 1007 instead of reading the code. */
        n = 123;
        while (n > 0 && ((unsigned char)reason[n] & 0xC0) == 0x80)
            n--;
    }
    if (n)
        memcpy(out + 2, reason, n);
    return 2 + n;
}
