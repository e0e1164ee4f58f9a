/* Fuzz target: what freshet reads from NATS besides the protocol itself, codec/nats.h.
 *
 * The first byte picks the reader:
 *   even: the rest is a subject token. fr_nats_token_decode accepts exactly the canonical
 *         spellings: whatever it decodes encodes back to the very same token (so a subject
 *         never names two topics); and the rest taken as a topic encodes to a token of plain
 *         characters and "=XX" only, which decodes back to it.
 *   odd:  the rest is a PubAck. fr_nats_puback_parse never reads past the input, accepts a
 *         sequence only when it is above 0, and always leaves a NUL-terminated description
 *         within its buffer. */
#include <stdint.h>
#include <string.h>

#include "fuzz_common.h"
#include "codec/nats.h"

static int token_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '=';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    if (data[0] % 2 == 0) {
        char *topic = malloc(n + 1);
        long got = fr_nats_token_decode(s, n, topic);
        if (got >= 0) {
            fz_expect(got > 0 && (size_t)got <= n && topic[got] == '\0', "bad decoded length");
            fz_expect(memchr(topic, '\0', (size_t)got) == NULL, "a decoded topic holds NUL");
            char *back = malloc(FR_NATS_TOKEN_MAX((size_t)got) + 1);
            size_t bl = fr_nats_token_encode(topic, (size_t)got, back);
            if (bl != n || memcmp(back, s, n) != 0) {
                fz_dump("token", s, n);
                fz_dump("encoded again", back, bl);
                fz_fail("a decoded token does not encode back to itself");
            }
            free(back);
        }
        free(topic);
        /* The input as a topic. */
        char *tok = malloc(FR_NATS_TOKEN_MAX(n) + 1);
        size_t tl = fr_nats_token_encode(s, n, tok);
        fz_expect(tl <= FR_NATS_TOKEN_MAX(n) && tok[tl] == '\0', "encoder overran");
        for (size_t i = 0; i < tl; i++)
            fz_expect(token_char(tok[i]), "a token holds a byte a subject token must not");
        int has_nul = memchr(s, '\0', n) != NULL;
        char *again = malloc(tl + 1);
        long dl = fr_nats_token_decode(tok, tl, again);
        if (n > 0 && !has_nul)
            fz_expect(dl == (long)n && memcmp(again, s, n) == 0,
                      "an encoded topic does not decode back to itself");
        else
            fz_expect(dl < 0, "a token of an empty topic or one with NUL was accepted");
        free(again);
        free(tok);
        return 0;
    }
    /* A copy of exactly n bytes, so ASan sees any read past the end. */
    char *copy = malloc(n ? n : 1);
    memcpy(copy, s, n);
    uint64_t seq = 0;
    int code = -1;
    char desc[32];
    memset(desc, 'x', sizeof desc);
    int rc = fr_nats_puback_parse(copy, n, &seq, &code, desc, sizeof desc);
    fz_expect(rc >= -1 && rc <= 1, "unexpected return %d", rc);
    fz_expect(memchr(desc, '\0', sizeof desc) != NULL, "the description lost its NUL");
    if (rc == 0)
        fz_expect(seq > 0, "a PubAck with sequence 0 was accepted");
    free(copy);
    return 0;
}
