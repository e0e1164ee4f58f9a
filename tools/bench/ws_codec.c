/* Handshake key and accept, SHA-1, base64 and client control frames; see ws_codec.h. */
#include "ws_codec.h"

#include <string.h>

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static uint32_t rol(uint32_t x, int n) {
    return (x << n) | (x >> (32 - n));
}

/* One 64-byte block into the state (FIPS 180-4, 6.1.2). */
static void sha1_block(uint32_t h[5], const uint8_t *blk) {
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)blk[4 * i] << 24 | (uint32_t)blk[4 * i + 1] << 16 |
               (uint32_t)blk[4 * i + 2] << 8 | (uint32_t)blk[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDC;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6;
        }
        uint32_t t = rol(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol(b, 30);
        b = a;
        a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

void fr_sha1(const void *data, size_t len, uint8_t out[20]) {
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    const uint8_t *p = data;
    size_t left = len;
    for (; left >= 64; p += 64, left -= 64)
        sha1_block(h, p);
    /* The tail, a 0x80 byte, zeros and the length in bits: one block, or two when the tail
     * leaves less than 9 bytes of room. */
    uint8_t last[128];
    memset(last, 0, sizeof last);
    memcpy(last, p, left);
    last[left] = 0x80;
    size_t n = left + 9 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++)
        last[n - 1 - i] = (uint8_t)(bits >> (8 * i));
    sha1_block(h, last);
    if (n == 128)
        sha1_block(h, last + 64);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(h[i] >> 8);
        out[4 * i + 3] = (uint8_t)h[i];
    }
}

size_t fr_base64(const uint8_t *in, size_t n, char *out) {
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = abc[v >> 18 & 63];
        out[o++] = abc[v >> 12 & 63];
        out[o++] = i + 1 < n ? abc[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? abc[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

void fr_ws_key(const uint8_t nonce[16], char key[FR_WS_KEY_LEN + 1]) {
    fr_base64(nonce, 16, key);
}

void fr_ws_accept(const char *key, size_t len, char accept[FR_WS_ACCEPT_LEN + 1]) {
    /* A key longer than this is not one a client of RFC 6455 sends; it is cut, and the check
     * it is for then fails, as it should. */
    char buf[64 + sizeof ws_guid];
    if (len > 64)
        len = 64;
    memcpy(buf, key, len);
    memcpy(buf + len, ws_guid, sizeof ws_guid - 1);
    uint8_t digest[20];
    fr_sha1(buf, len + sizeof ws_guid - 1, digest);
    fr_base64(digest, sizeof digest, accept);
}

size_t fr_ws_control(char *out, int opcode, const void *payload, size_t len,
                     const uint8_t mask[4]) {
    const uint8_t *p = payload;
    if (len > FR_WS_CONTROL_MAX)
        len = FR_WS_CONTROL_MAX;
    out[0] = (char)(0x80 | (opcode & 0x0f));
    out[1] = (char)(0x80 | len);
    memcpy(out + 2, mask, 4);
    for (size_t i = 0; i < len; i++)
        out[6 + i] = (char)(p[i] ^ mask[i & 3]);
    return 6 + len;
}
