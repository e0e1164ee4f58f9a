/* The TLS 1.3 record layer of our own (src/codec/tls_records.c) against itself: two layers with
 * mirrored secrets, as a server and its client would hold them. Records both ways for each
 * suite, input cut anywhere, a reader's buffer smaller than a record, KeyUpdate asked and
 * answered, close_notify, and what must fail (a bad tag, a wrong sequence number, bad headers,
 * and inner plaintexts the layer never writes: those are sealed here with keys derived by
 * OpenSSL's own TLS 1.3 KDF, which also checks the layer's key schedule).
 * test_tls.c checks the same layer against OpenSSL's client. */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include "codec/tls_records.h"
#include "fr_test.h"

typedef struct {
    fr_tls_rec_t *a, *b; /* a writes under x and reads under y; b the other way round */
    fr_buf_t wire;       /* records on their way */
    fr_buf_t got;        /* plaintext the reader returned */
    ssize_t last;        /* the reader's last result */
} duo_t;

static int duo_open(duo_t *d, fr_tls_suite_t suite, uint64_t seq) {
    unsigned char x[48], y[48];
    for (int i = 0; i < 48; i++) {
        x[i] = (unsigned char)(i * 3 + 1);
        y[i] = (unsigned char)(200 - i);
    }
    memset(d, 0, sizeof *d);
    d->a = fr_tls_rec_new(suite, y, seq, x, seq + 1);
    d->b = fr_tls_rec_new(suite, x, seq + 1, y, seq);
    return d->a && d->b ? 0 : -1;
}

static void duo_close(duo_t *d) {
    fr_tls_rec_free(d->a);
    fr_tls_rec_free(d->b);
    fr_buf_free(&d->wire);
    fr_buf_free(&d->got);
}

/* `to` reads d->wire in pieces of `step` bytes (0: at once) with a buffer of cap bytes; what it
 * answers (KeyUpdate, alerts) goes to *answer. */
static void deliver(duo_t *d, fr_tls_rec_t *to, size_t step, size_t cap, fr_buf_t *answer) {
    char *buf = malloc(cap);
    const char *p = d->wire.p;
    size_t left = d->wire.len;
    d->last = FR_TLS_AGAIN;
    while (left > 0 && d->last >= 0) {
        size_t k = step && step < left ? step : left, n = k;
        const char *in = p;
        while ((d->last = fr_tls_rec_read(to, &in, &n, buf, cap, answer)) > 0) {
            CHECK((size_t)d->last <= cap);
            fr_buf_put(&d->got, buf, (size_t)d->last);
        }
        if (d->last == FR_TLS_AGAIN)
            CHECK_EQ_UINT(n, 0);
        p += k;
        left -= k;
    }
    d->wire.len = 0;
    free(buf);
}

static char *pattern(size_t n, unsigned seed) {
    char *p = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        p[i] = (char)(i * 13 + seed + i / 251);
    return p;
}

/* Buffers of 0, 1, 16383, 2 and 40000 bytes from a to b: records of at most 16 KB, every byte
 * in order, whatever the cut of the input and the reader's buffer. */
static void test_both_ways_each_suite(void) {
    static const size_t sizes[] = {0, 1, 16383, 2, 40000};
    size_t total = 0;
    struct iovec iov[5];
    for (int i = 0; i < 5; i++) {
        iov[i].iov_base = pattern(sizes[i], (unsigned)i);
        iov[i].iov_len = sizes[i];
        total += sizes[i];
    }
    char *all = malloc(total);
    for (int i = 0, off = 0; i < 5; off += (int)sizes[i], i++)
        memcpy(all + off, iov[i].iov_base, sizes[i]);
    static const size_t steps[] = {0, 1, 5, 16389};
    static const size_t caps[] = {FR_TLS_RECORD, 100, 1};
    for (int suite = 0; suite < 3; suite++) {
        for (size_t s = 0; s < 4; s++) {
            for (size_t c = 0; c < 3; c++) {
                if (steps[s] == 1 && caps[c] == 1)
                    continue; /* slow and adds nothing */
                duo_t d;
                REQUIRE(duo_open(&d, (fr_tls_suite_t)suite, 1000) == 0);
                fr_buf_t answer = {0};
                CHECK_EQ_INT(fr_tls_rec_write(d.a, iov, 5, &d.wire), 0);
                /* ceil(total / 16384) records, each 22 bytes more than its content. */
                CHECK_EQ_UINT(d.wire.len, total + 22 * ((total + 16383) / 16384));
                deliver(&d, d.b, steps[s], caps[c], &answer);
                CHECK_EQ_INT(d.last, FR_TLS_AGAIN);
                CHECK(d.got.len == total && memcmp(d.got.p, all, total) == 0);
                CHECK_EQ_UINT(answer.len, 0);
                /* And back. */
                d.got.len = 0;
                CHECK_EQ_INT(fr_tls_rec_write(d.b, iov + 1, 1, &d.wire), 0);
                deliver(&d, d.a, 0, FR_TLS_RECORD, &answer);
                CHECK_MEM(d.got.p, d.got.len, iov[1].iov_base, 1);
                fr_buf_free(&answer);
                duo_close(&d);
            }
        }
    }
    for (int i = 0; i < 5; i++)
        free(iov[i].iov_base);
    free(all);
}

/* a updates its keys and asks b to: b answers with its own KeyUpdate, which a reads. */
static void test_key_update(void) {
    for (int suite = 0; suite < 3; suite++) {
        duo_t d;
        REQUIRE(duo_open(&d, (fr_tls_suite_t)suite, 0) == 0);
        struct iovec v = {(void *)"ping", 4};
        fr_buf_t answer = {0};
        for (int round = 0; round < 3; round++) {
            CHECK_EQ_INT(fr_tls_rec_key_update(d.a, round != 1, &d.wire), 0);
            CHECK_EQ_INT(fr_tls_rec_write(d.a, &v, 1, &d.wire), 0);
            d.got.len = 0;
            deliver(&d, d.b, 3, FR_TLS_RECORD, &answer);
            CHECK_EQ_INT(d.last, FR_TLS_AGAIN);
            CHECK_MEM(d.got.p, d.got.len, "ping", 4);
            /* Asked: one KeyUpdate record (5 + 5 + 1 + 16 bytes) comes back first. */
            CHECK_EQ_UINT(answer.len, round != 1 ? 27u : 0u);
            CHECK_EQ_INT(fr_tls_rec_write(d.b, &v, 1, &answer), 0);
            fr_buf_put(&d.wire, answer.p, answer.len);
            answer.len = 0;
            d.got.len = 0;
            deliver(&d, d.a, 0, FR_TLS_RECORD, &answer);
            CHECK_EQ_INT(d.last, FR_TLS_AGAIN);
            CHECK_MEM(d.got.p, d.got.len, "ping", 4);
            CHECK_EQ_UINT(answer.len, 0); /* an answer is not answered */
        }
        fr_buf_free(&answer);
        duo_close(&d);
    }
}

static void test_close_notify(void) {
    duo_t d;
    REQUIRE(duo_open(&d, FR_TLS_AES_128_GCM_SHA256, 0) == 0);
    fr_buf_t answer = {0};
    fr_tls_rec_close_notify(d.a, &d.wire);
    CHECK_EQ_UINT(d.wire.len, 5 + 2 + 1 + 16);
    deliver(&d, d.b, 0, FR_TLS_RECORD, &answer);
    CHECK_EQ_INT(d.last, FR_TLS_CLOSED);
    char buf[16];
    const char *in = "";
    size_t n = 0;
    CHECK_EQ_INT(fr_tls_rec_read(d.b, &in, &n, buf, sizeof buf, &answer), FR_TLS_CLOSED);
    CHECK_EQ_UINT(answer.len, 0);
    fr_buf_free(&answer);
    duo_close(&d);
}

/* Fails d.b with wire bytes; returns why. */
static const char *refused(duo_t *d, fr_buf_t *answer) {
    deliver(d, d->b, 0, FR_TLS_RECORD, answer);
    CHECK_EQ_INT(d->last, FR_TLS_ERROR);
    CHECK_EQ_UINT(d->got.len, 0);
    const char *why = fr_tls_rec_why();
    return why ? why : "";
}

static void test_refused(void) {
    struct iovec v = {(void *)"hello", 5};
    fr_buf_t answer = {0};
    duo_t d;

    /* Each byte of a record changed in turn (but its length): the header is the AAD, the rest
     * the ciphertext. */
    for (size_t i = 0; i < 5 + 5 + 1 + 16; i++) {
        if (i == 3 || i == 4)
            continue;
        REQUIRE(duo_open(&d, FR_TLS_CHACHA20_POLY1305_SHA256, 7) == 0);
        CHECK_EQ_INT(fr_tls_rec_write(d.a, &v, 1, &d.wire), 0);
        d.wire.p[i] ^= i < 3 ? 0x10 : 0x01;
        const char *why = refused(&d, &answer);
        if (i >= 5)
            CHECK_EQ_STR(why, "bad record mac");
        /* The failure is final both ways. */
        CHECK_EQ_INT(fr_tls_rec_write(d.b, &v, 1, &d.wire), -1);
        duo_close(&d);
    }
    /* The failure sent a fatal alert: bad_record_mac (2, 20), which a reads as such. */
    answer.len = 0;
    REQUIRE(duo_open(&d, FR_TLS_AES_256_GCM_SHA384, 0) == 0);
    CHECK_EQ_INT(fr_tls_rec_write(d.a, &v, 1, &d.wire), 0);
    d.wire.p[d.wire.len - 1] ^= 1;
    CHECK_EQ_STR(refused(&d, &answer), "bad record mac");
    fr_buf_put(&d.wire, answer.p, answer.len);
    answer.len = 0;
    deliver(&d, d.a, 0, FR_TLS_RECORD, &answer);
    CHECK_EQ_INT(d.last, FR_TLS_ERROR);
    CHECK_EQ_STR(fr_tls_rec_why(), "the peer sent alert 20");
    duo_close(&d);

    /* A record under the right key with the wrong sequence number (one skipped). */
    REQUIRE(duo_open(&d, FR_TLS_AES_128_GCM_SHA256, 0) == 0);
    CHECK_EQ_INT(fr_tls_rec_write(d.a, &v, 1, &d.wire), 0);
    d.wire.len = 0;
    CHECK_EQ_INT(fr_tls_rec_write(d.a, &v, 1, &d.wire), 0);
    CHECK_EQ_STR(refused(&d, &answer), "bad record mac");
    duo_close(&d);

    /* Headers refused before any body byte is kept. */
    static const struct {
        const char *bytes;
        const char *why;
    } bad[] = {
        {"\x14\x03\x03\x00\x01", "change cipher spec after the handshake"},
        {"\x16\x03\x03\x00\x20", "unprotected record after the handshake"},
        {"\x15\x03\x03\x00\x02", "unprotected record after the handshake"},
        {"\x17\x03\x01\x00\x20", "wrong version number"},
        {"\x17\x03\x03\x41\x01", "record overflow"},
        {"\x17\x03\x03\x00\x10", "record too short"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        REQUIRE(duo_open(&d, FR_TLS_AES_128_GCM_SHA256, 0) == 0);
        fr_buf_put(&d.wire, bad[i].bytes, 5);
        CHECK_EQ_STR(refused(&d, &answer), bad[i].why);
        duo_close(&d);
    }
    fr_buf_free(&answer);
}

/* ---- records the layer never writes, sealed here ----------------------------------------- */

/* HKDF-Expand-Label(secret, label, "", len) with SHA-256, by OpenSSL's TLS13-KDF. */
static int expand(const unsigned char *secret, const char *label, unsigned char *out, size_t len) {
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_TLS1_3_KDF, NULL);
    EVP_KDF_CTX *k = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, 32),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PREFIX, (void *)"tls13 ", 6),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_LABEL, (void *)label, strlen(label)),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_DATA, (void *)"", 0),
        OSSL_PARAM_construct_end(),
    };
    int rc = k && EVP_KDF_derive(k, out, len, params) == 1 ? 0 : -1;
    EVP_KDF_CTX_free(k);
    EVP_KDF_free(kdf);
    return rc;
}

/* Appends to wire an AES-128-GCM record with inner plaintext `inner` (content, type, padding:
 * as given) under secret at sequence seq. */
static int forge(fr_buf_t *wire, const unsigned char *secret, uint64_t seq,
                 const unsigned char *inner, size_t len) {
    unsigned char key[16], iv[12], hdr[5] = {23, 3, 3, (unsigned char)((len + 16) >> 8),
                                              (unsigned char)(len + 16)};
    if (expand(secret, "key", key, 16) < 0 || expand(secret, "iv", iv, 12) < 0)
        return -1;
    for (int i = 0; i < 8; i++)
        iv[11 - i] ^= (unsigned char)(seq >> (8 * i));
    unsigned char *out = malloc(len + 16);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int k, rc = -1;
    if (c && EVP_EncryptInit_ex(c, EVP_aes_128_gcm(), NULL, key, iv) == 1 &&
        EVP_EncryptUpdate(c, NULL, &k, hdr, 5) == 1 &&
        EVP_EncryptUpdate(c, out, &k, inner, (int)len) == 1 &&
        EVP_EncryptFinal_ex(c, out + k, &k) == 1 &&
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, out + len) == 1) {
        fr_buf_put(wire, hdr, 5);
        fr_buf_put(wire, out, len + 16);
        rc = 0;
    }
    EVP_CIPHER_CTX_free(c);
    free(out);
    return rc;
}

/* What duo_open gives b to read with: secret x from sequence 1. */
static const unsigned char *x_secret(void) {
    static unsigned char x[48];
    for (int i = 0; i < 48; i++)
        x[i] = (unsigned char)(i * 3 + 1);
    return x;
}

/* Padding and empty data records are read through; what the layer must refuse is refused. */
static void test_forged_inner(void) {
    fr_buf_t answer = {0};
    duo_t d;
    /* "hi", then padding; an empty data record; "!" : the reader sees "hi!". */
    REQUIRE(duo_open(&d, FR_TLS_AES_128_GCM_SHA256, 0) == 0);
    static const unsigned char hi[] = {'h', 'i', 23, 0, 0, 0, 0, 0, 0};
    static const unsigned char empty[] = {23, 0, 0};
    static const unsigned char bang[] = {'!', 23};
    REQUIRE(forge(&d.wire, x_secret(), 1, hi, sizeof hi) == 0);
    REQUIRE(forge(&d.wire, x_secret(), 2, empty, sizeof empty) == 0);
    REQUIRE(forge(&d.wire, x_secret(), 3, bang, sizeof bang) == 0);
    deliver(&d, d.b, 0, FR_TLS_RECORD, &answer);
    CHECK_EQ_INT(d.last, FR_TLS_AGAIN);
    CHECK_MEM(d.got.p, d.got.len, "hi!", 3);
    duo_close(&d);

    static unsigned char big[16384 + 2];
    memset(big, 'a', sizeof big);
    big[16385] = 23; /* 16,385 bytes of content: one too many */
    static const struct {
        const unsigned char *inner;
        size_t len;
        const char *why;
    } bad[] = {
        {(const unsigned char *)"\0\0\0\0", 4, "record without a content type"},
        {big, sizeof big, "record overflow"},
        {(const unsigned char *)"\x02\x28\x15", 3, "the peer sent alert 40"},
        {(const unsigned char *)"\x01\x00\x00\x15", 4, "bad alert"},
        {(const unsigned char *)"\x04\x00\x00\x04\x00\x00\x00\x00\x16", 9,
         "unexpected handshake message"},
        {(const unsigned char *)"\x18\x00\x00\x01\x00\x18\x00\x00\x01\x00\x16", 11,
         "bad key update (not alone in its record)"},
        {(const unsigned char *)"\x18\x00\x00\x16", 4,
         "handshake message split across records (not supported)"},
        {(const unsigned char *)"\x18\x00\x00\x02\x00\x16", 6,
         "handshake message split across records (not supported)"},
        {(const unsigned char *)"\x18\x00\x00\x00\x16", 5, "bad key update (not alone in its record)"},
        {(const unsigned char *)"\x18\x00\x00\x01\x02\x16", 6, "bad key update request"},
        {(const unsigned char *)"x\x14", 2, "unexpected record type"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        REQUIRE(duo_open(&d, FR_TLS_AES_128_GCM_SHA256, 0) == 0);
        REQUIRE(forge(&d.wire, x_secret(), 1, bad[i].inner, bad[i].len) == 0);
        CHECK_EQ_STR(refused(&d, &answer), bad[i].why);
        duo_close(&d);
    }
    fr_buf_free(&answer);
}

/* An idle layer holds no buffer: the struct is all (the memory test counts OpenSSL's part). */
static void test_small(void) {
    CHECK(fr_tls_rec_size() <= 256);
    CHECK_EQ_INT(fr_tls_suite_of(0x03001301), FR_TLS_AES_128_GCM_SHA256);
    CHECK_EQ_INT(fr_tls_suite_of(0x03001303), FR_TLS_CHACHA20_POLY1305_SHA256);
    CHECK_EQ_INT(fr_tls_suite_of(0x0300C02F), -1);
    CHECK_EQ_UINT(fr_tls_suite_secret_len(FR_TLS_AES_256_GCM_SHA384), 48);
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_both_ways_each_suite);
    FR_RUN(test_key_update);
    FR_RUN(test_close_notify);
    FR_RUN(test_refused);
    FR_RUN(test_forged_inner);
    FR_RUN(test_small);
    return FR_TEST_END();
}
