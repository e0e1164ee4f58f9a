/* Fuzz target: the TLS 1.3 record layer of our own (src/codec/tls_records.c), what an idle TLS
 * 1.3 server session runs on once it has left OpenSSL. Two layers with fixed, mirrored secrets
 * (a and b, as a server and its client) for the suite the first byte picks.
 *
 * Input: [mode][bytes…]; the suite is mode % 3.
 *   mode bit 2 = 1, raw: the bytes are ciphertext from the peer, cut into reads whose lengths
 *     and buffer sizes come from the input. No plaintext may come out (no tag can be forged),
 *     every read uses all its bytes or fails, errors and the close are final (writes refuse
 *     after an error).
 *   mode bit 2 = 0, session: a list of operations [op][length: 1 byte][bytes]:
 *       0 a sends the bytes, in up to four buffers cut where the bytes say
 *       1 b sends the bytes
 *       2 a updates its keys (asking b to update too when the length is odd)
 *       3 / 4 what a / b sent is delivered to the other, cut into reads of a length and with a
 *         buffer size the bytes choose; the reader's answers (KeyUpdate) go back
 *       5 one byte of what a sent is flipped, then delivered: b yields at most a prefix of what
 *         a sent, then fails or waits for bytes that will not come; the session ends
 *       6 a sends close_notify: b reads FR_TLS_CLOSED (after all a sent before it)
 *     At the end everything still on its way is delivered: each side has read exactly what the
 *     other sent (records written by this layer read back through it).
 * FR_FUZZ_SHOW=1 prints the operations. */
#include <stdint.h>
#include <string.h>

#include "codec/tls_records.h"
#include "fuzz_common.h"

static int show;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *s = getenv("FR_FUZZ_SHOW");
    show = s && *s == '1';
    return 0;
}

/* One direction: the writer's records on their way, what was sent and what was read. */
typedef struct {
    fr_tls_rec_t *from, *to;
    fr_buf_t wire, sent, got;
    int closed; /* the reader returned FR_TLS_CLOSED */
} way_t;

static void new_pair(fr_tls_suite_t suite, fr_tls_rec_t **a, fr_tls_rec_t **b) {
    unsigned char x[48], y[48];
    for (int i = 0; i < 48; i++) {
        x[i] = (unsigned char)(0x5a ^ i);
        y[i] = (unsigned char)(0xa5 + i);
    }
    *a = fr_tls_rec_new(suite, y, 3, x, 0);
    *b = fr_tls_rec_new(suite, x, 0, y, 3);
    if (!*a || !*b)
        fz_fail("fr_tls_rec_new failed for suite %d", (int)suite);
}

static size_t cap_of(uint8_t c) {
    return c == 0 ? FR_TLS_RECORD : (size_t)c * 67 + 1;
}

/* Reads bytes through `to` in pieces of `step`; checks each result. Returns the last one. */
static ssize_t read_all(fr_tls_rec_t *to, const char *p, size_t n, size_t step, size_t cap,
                        fr_buf_t *got, fr_buf_t *answer) {
    char *buf = malloc(cap);
    ssize_t last = FR_TLS_AGAIN;
    while (n > 0 && last >= 0 && last != FR_TLS_CLOSED) {
        size_t k = step < n ? step : n, left = k;
        const char *in = p;
        while ((last = fr_tls_rec_read(to, &in, &left, buf, cap, answer)) > 0) {
            if ((size_t)last > cap)
                fz_fail("read %zd bytes into a buffer of %zu", last, cap);
            fr_buf_put(got, buf, (size_t)last);
        }
        if (last == FR_TLS_AGAIN && left != 0)
            fz_fail("FR_TLS_AGAIN with %zu bytes unread", left);
        if (last < FR_TLS_ERROR)
            fz_fail("read returned %zd", last);
        p += k;
        n -= k;
    }
    if (last == FR_TLS_ERROR) {
        const char *why = fr_tls_rec_why();
        if (!why || !*why)
            fz_fail("an error without a reason");
        /* Final: reading again fails, writing refuses. */
        const char *in = "";
        size_t zero = 0;
        if (fr_tls_rec_read(to, &in, &zero, buf, cap, answer) != FR_TLS_ERROR)
            fz_fail("a read after an error did not fail");
        struct iovec v = {(void *)"x", 1};
        fr_buf_t sink = {0};
        if (fr_tls_rec_write(to, &v, 1, &sink) != -1 || sink.len != 0)
            fz_fail("a write after an error did not refuse");
        fr_buf_free(&sink);
    }
    free(buf);
    return last;
}

static void run_raw(fz_reader_t *r, fr_tls_suite_t suite) {
    fr_tls_rec_t *a, *b;
    new_pair(suite, &a, &b);
    fr_buf_t got = {0}, answer = {0};
    ssize_t last = FR_TLS_AGAIN;
    while (fz_left(r) > 0 && last == FR_TLS_AGAIN) {
        size_t step = (size_t)fz_u8(r) * 16 + 1, cap = cap_of(fz_u8(r)), n;
        const uint8_t *p = fz_take(r, step, &n);
        last = read_all(b, (const char *)p, n, n ? n : 1, cap, &got, &answer);
    }
    if (got.len)
        fz_fail("%zu bytes of plaintext from bytes that know no key", got.len);
    fr_buf_free(&got);
    fr_buf_free(&answer);
    fr_tls_rec_free(a);
    fr_tls_rec_free(b);
}

/* Delivers w->wire; answers go to the other way's wire. Checks what was read so far is what
 * was sent so far (all of it when whole is set). */
static ssize_t deliver(way_t *w, way_t *back, size_t step, size_t cap, int whole) {
    ssize_t last = read_all(w->to, w->wire.p, w->wire.len, step, cap, &w->got, &back->wire);
    w->wire.len = 0;
    if (last == FR_TLS_ERROR)
        fz_fail("a record of the layer failed to read back: %s", fr_tls_rec_why());
    if (last == FR_TLS_CLOSED)
        w->closed = 1;
    if (w->got.len > w->sent.len || (w->got.len && memcmp(w->got.p, w->sent.p, w->got.len)) ||
        (whole && w->got.len != w->sent.len)) {
        fz_dump("sent", w->sent.p, w->sent.len);
        fz_dump("read", w->got.p, w->got.len);
        fz_fail("what was read is not what was sent");
    }
    return last;
}

static void run_session(fz_reader_t *r, fr_tls_suite_t suite) {
    way_t ab = {0}, ba = {0};
    new_pair(suite, &ab.from, &ba.from);
    ab.to = ba.from;
    ba.to = ab.from;
    int over = 0;
    while (fz_left(r) > 0 && !over) {
        uint8_t op = fz_u8(r) % 7;
        size_t len = fz_u8(r), n;
        const uint8_t *p = fz_take(r, len, &n);
        if (show)
            fprintf(stderr, "op %u, %zu bytes\n", op, n);
        if (ab.closed && (op == 0 || op == 2 || op == 5 || op == 6))
            continue; /* a said goodbye */
        switch (op) {
        case 0:
        case 1: {
            way_t *w = op == 0 ? &ab : &ba;
            struct iovec v[4];
            size_t cut1 = n ? p[0] % (n + 1) : 0, cut2 = n > 1 ? p[1] % (n + 1) : 0;
            size_t lo = cut1 < cut2 ? cut1 : cut2, hi = cut1 < cut2 ? cut2 : cut1;
            v[0] = (struct iovec){(void *)p, lo};
            v[1] = (struct iovec){(void *)(p + lo), 0};
            v[2] = (struct iovec){(void *)(p + lo), hi - lo};
            v[3] = (struct iovec){(void *)(p + hi), n - hi};
            /* Also a large write now and then: several full records. */
            size_t big = n > 2 && p[2] == 0xff ? 40000 : 0;
            char *large = big ? malloc(big) : NULL;
            for (size_t i = 0; i < big; i++)
                large[i] = (char)(i ^ n);
            struct iovec vb = {large, big};
            if (fr_tls_rec_write(w->from, v, 4, &w->wire) != 0 ||
                (big && fr_tls_rec_write(w->from, &vb, 1, &w->wire) != 0))
                fz_fail("a write failed");
            fr_buf_put(&w->sent, p, n);
            if (big)
                fr_buf_put(&w->sent, large, big);
            free(large);
            break;
        }
        case 2:
            if (fr_tls_rec_key_update(ab.from, (int)(n & 1), &ab.wire) != 0)
                fz_fail("a key update failed");
            break;
        case 3:
        case 4: {
            way_t *w = op == 3 ? &ab : &ba, *back = op == 3 ? &ba : &ab;
            size_t step = n ? (size_t)p[0] * 7 + 1 : w->wire.len + 1;
            (void)deliver(w, back, step, cap_of(n > 1 ? p[1] : 0), 1);
            break;
        }
        case 5: {
            if (ab.wire.len == 0)
                break;
            size_t at = n ? ((size_t)p[0] << 8 | (n > 1 ? p[1] : 0)) % ab.wire.len : 0;
            ab.wire.p[at] ^= (char)(n > 2 && p[2] ? p[2] : 1);
            ssize_t last = read_all(ab.to, ab.wire.p, ab.wire.len, ab.wire.len, FR_TLS_RECORD,
                                    &ab.got, &ba.wire);
            if (last != FR_TLS_ERROR && last != FR_TLS_AGAIN)
                fz_fail("a changed record read as %zd", last);
            if (ab.got.len > ab.sent.len ||
                (ab.got.len && memcmp(ab.got.p, ab.sent.p, ab.got.len) != 0))
                fz_fail("a changed record yielded what was not sent");
            over = 1;
            break;
        }
        case 6:
            fr_tls_rec_close_notify(ab.from, &ab.wire);
            if (deliver(&ab, &ba, ab.wire.len + 1, FR_TLS_RECORD, 1) != FR_TLS_CLOSED)
                fz_fail("close_notify did not close");
            break;
        }
    }
    if (!over) {
        /* Twice: b's answers to a's KeyUpdates travel back once a's records are read. */
        for (int i = 0; i < 2; i++) {
            if (!ab.closed)
                (void)deliver(&ab, &ba, ab.wire.len + 1, FR_TLS_RECORD, 1);
            (void)deliver(&ba, &ab, ba.wire.len + 1, FR_TLS_RECORD, 1);
        }
    }
    fr_tls_rec_free(ab.from);
    fr_tls_rec_free(ba.from);
    fr_buf_free(&ab.wire);
    fr_buf_free(&ab.sent);
    fr_buf_free(&ab.got);
    fr_buf_free(&ba.wire);
    fr_buf_free(&ba.sent);
    fr_buf_free(&ba.got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_reader_t r = {data, size, 0};
    if (size == 0)
        return 0;
    uint8_t mode = fz_u8(&r);
    fr_tls_suite_t suite = (fr_tls_suite_t)(mode % 3);
    if (mode & 4)
        run_raw(&r, suite);
    else
        run_session(&r, suite);
    return 0;
}
