/* TLS 1.3 records after the handshake; see tls_records.h.
 *
 * A record on the wire (RFC 8446 §5.2):
 *
 *   17 03 03 len:2 │ AEAD(content ‖ inner type ‖ zeros) │ tag:16
 *   └ header: the additional data ┘
 *
 * nonce = iv XOR the record's 64-bit sequence number, left-padded to 12 bytes (§5.3). */
#include "codec/tls_records.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include "base/util.h"

#define HEADER 5
#define TAG 16
#define IV 12
#define MAX_SECRET 48
/* The largest protected record (§5.2: 2^14 + 256), and the largest content (§5.4: 2^14). */
#define MAX_CIPHERTEXT (16384 + 256)
#define MAX_CONTENT 16384

enum { T_CCS = 20, T_ALERT = 21, T_HANDSHAKE = 22, T_DATA = 23 };
enum { HS_KEY_UPDATE = 24 };
/* Alert descriptions (§6). */
enum {
    A_CLOSE_NOTIFY = 0,
    A_UNEXPECTED_MESSAGE = 10,
    A_BAD_RECORD_MAC = 20,
    A_RECORD_OVERFLOW = 22,
    A_ILLEGAL_PARAMETER = 47,
    A_DECODE_ERROR = 50,
    A_INTERNAL_ERROR = 80,
};

/* One direction: its AEAD context (keyed), its secret (for KeyUpdate), IV and sequence. */
typedef struct {
    EVP_CIPHER_CTX *aead;
    uint64_t seq;
    unsigned char secret[MAX_SECRET];
    unsigned char iv[IV];
} dir_t;

struct fr_tls_rec {
    dir_t rd, wr;
    /* A record arriving in pieces: its header is gathered in hdr; once the header is whole the
     * body goes to part (heap, exactly the body's length), freed as soon as it is decrypted. */
    unsigned char *part;
    size_t part_len;
    /* Plaintext of a record larger than the caller's buffer, served by the next calls. */
    unsigned char *held;
    size_t held_off, held_len;
    unsigned char hdr[HEADER];
    unsigned char hdr_len;
    unsigned char suite;
    unsigned char alpn_len;
    unsigned char alpn[FR_TLS_REC_ALPN];
    unsigned char closed : 1; /* close_notify came */
    unsigned char failed : 1; /* a fatal error: nothing more is read or written */
};

/* Made once per process: OpenSSL's algorithm objects (fetching them per session would cost a
 * lookup and a reference each). */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static EVP_KDF *hkdf;
static EVP_CIPHER *ciphers[3];
static const char *const digests[3] = {"SHA256", "SHA384", "SHA256"};
static const size_t key_lens[3] = {16, 32, 32};
static const size_t secret_lens[3] = {32, 48, 32};
static const char *const names[3] = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                     "TLS_CHACHA20_POLY1305_SHA256"};

static _Thread_local const char *why;
static _Thread_local char why_buf[64];

static void init_once(void) {
    hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    ciphers[FR_TLS_AES_128_GCM_SHA256] = EVP_CIPHER_fetch(NULL, "AES-128-GCM", NULL);
    ciphers[FR_TLS_AES_256_GCM_SHA384] = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    ciphers[FR_TLS_CHACHA20_POLY1305_SHA256] = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
}

int fr_tls_suite_of(unsigned id) {
    switch (id & 0xffff) {
    case 0x1301:
        return FR_TLS_AES_128_GCM_SHA256;
    case 0x1302:
        return FR_TLS_AES_256_GCM_SHA384;
    case 0x1303:
        return FR_TLS_CHACHA20_POLY1305_SHA256;
    default:
        return -1;
    }
}

size_t fr_tls_suite_secret_len(fr_tls_suite_t s) {
    return secret_lens[s];
}

const char *fr_tls_rec_why(void) {
    return why;
}

int fr_tls_rec_set_alpn(fr_tls_rec_t *r, const unsigned char *p, unsigned len) {
    if (len > sizeof r->alpn)
        return -1;
    if (len)
        memcpy(r->alpn, p, len);
    r->alpn_len = (unsigned char)len;
    return 0;
}

const unsigned char *fr_tls_rec_alpn(const fr_tls_rec_t *r, unsigned *len) {
    *len = r->alpn_len;
    return r->alpn_len ? r->alpn : NULL;
}

const char *fr_tls_rec_cipher(const fr_tls_rec_t *r) {
    return names[r->suite];
}

size_t fr_tls_rec_size(void) {
    return sizeof(fr_tls_rec_t);
}

/* ---- keys ---------------------------------------------------------------------------------- */

/* HKDF-Expand-Label(secret, label, "", len) (§7.1). */
static int expand_label(fr_tls_suite_t s, const unsigned char *secret, const char *label,
                        unsigned char *out, size_t len) {
    unsigned char info[2 + 1 + 255 + 1];
    size_t ll = 6 + strlen(label), k = 0;
    info[k++] = (unsigned char)(len >> 8);
    info[k++] = (unsigned char)len;
    info[k++] = (unsigned char)ll;
    memcpy(info + k, "tls13 ", 6);
    memcpy(info + k + 6, label, ll - 6);
    k += ll;
    info[k++] = 0; /* an empty context */
    EVP_KDF_CTX *kc = hkdf ? EVP_KDF_CTX_new(hkdf) : NULL;
    if (!kc)
        return -1;
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)digests[s], 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, secret_lens[s]),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, k),
        OSSL_PARAM_construct_end(),
    };
    int rc = EVP_KDF_derive(kc, out, len, params) == 1 ? 0 : -1;
    EVP_KDF_CTX_free(kc);
    return rc;
}

/* Keys one direction from d->secret: a fresh key and IV, sequence 0 unless seq says. */
static int key_dir(fr_tls_suite_t s, dir_t *d, int enc, uint64_t seq) {
    unsigned char key[32];
    int rc = -1;
    if (expand_label(s, d->secret, "key", key, key_lens[s]) < 0 ||
        expand_label(s, d->secret, "iv", d->iv, IV) < 0)
        goto done;
    if (!d->aead && !(d->aead = EVP_CIPHER_CTX_new()))
        goto done;
    if (EVP_CipherInit_ex2(d->aead, ciphers[s], key, NULL, enc, NULL) != 1)
        goto done;
    d->seq = seq;
    rc = 0;
done:
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}

/* The next traffic secret of a direction (§7.2), keyed at sequence 0. */
static int update_dir(fr_tls_rec_t *r, dir_t *d, int enc) {
    unsigned char next[MAX_SECRET];
    size_t len = secret_lens[r->suite];
    if (expand_label(r->suite, d->secret, "traffic upd", next, len) < 0)
        return -1;
    memcpy(d->secret, next, len);
    OPENSSL_cleanse(next, sizeof next);
    return key_dir(r->suite, d, enc, 0);
}

fr_tls_rec_t *fr_tls_rec_new(fr_tls_suite_t suite, const unsigned char *read_secret,
                             uint64_t read_seq, const unsigned char *write_secret,
                             uint64_t write_seq) {
    pthread_once(&once, init_once);
    if ((unsigned)suite > FR_TLS_CHACHA20_POLY1305_SHA256 || !ciphers[suite])
        return NULL;
    fr_tls_rec_t *r = fr_calloc(1, sizeof *r);
    r->suite = (unsigned char)suite;
    memcpy(r->rd.secret, read_secret, secret_lens[suite]);
    memcpy(r->wr.secret, write_secret, secret_lens[suite]);
    if (key_dir(suite, &r->rd, 0, read_seq) < 0 || key_dir(suite, &r->wr, 1, write_seq) < 0) {
        ERR_clear_error();
        fr_tls_rec_free(r);
        return NULL;
    }
    return r;
}

void fr_tls_rec_free(fr_tls_rec_t *r) {
    if (!r)
        return;
    EVP_CIPHER_CTX_free(r->rd.aead);
    EVP_CIPHER_CTX_free(r->wr.aead);
    free(r->part);
    free(r->held);
    OPENSSL_cleanse(r, sizeof *r);
    free(r);
}

static void nonce_of(const dir_t *d, unsigned char nonce[IV]) {
    memcpy(nonce, d->iv, IV);
    for (int i = 0; i < 8; i++)
        nonce[IV - 1 - i] ^= (unsigned char)(d->seq >> (8 * i));
}

/* ---- writing ------------------------------------------------------------------------------- */

/* Where the plaintext of the next record comes from: a cursor over the caller's buffers. */
typedef struct {
    const struct iovec *bufs;
    size_t nbufs, i, off;
} cursor_t;

/* Appends one record of inner type `type` carrying len bytes taken from cur (or from one
 * buffer when cur is NULL: p). The plaintext is encrypted from where it lies into out. */
static int seal(fr_tls_rec_t *r, unsigned char type, cursor_t *cur, const unsigned char *p,
                size_t len, fr_buf_t *out) {
    size_t body = len + 1 + TAG;
    fr_buf_reserve(out, HEADER + body);
    unsigned char *o = (unsigned char *)out->p + out->len;
    o[0] = T_DATA;
    o[1] = 3;
    o[2] = 3;
    o[3] = (unsigned char)(body >> 8);
    o[4] = (unsigned char)body;
    unsigned char nonce[IV];
    nonce_of(&r->wr, nonce);
    EVP_CIPHER_CTX *c = r->wr.aead;
    int k, done = 0;
    if (EVP_EncryptInit_ex(c, NULL, NULL, NULL, nonce) != 1 ||
        EVP_EncryptUpdate(c, NULL, &k, o, HEADER) != 1)
        return -1;
    unsigned char *dst = o + HEADER;
    size_t left = len;
    while (left > 0) {
        const unsigned char *src = p;
        size_t take = left;
        if (cur) {
            const struct iovec *b = &cur->bufs[cur->i];
            src = (const unsigned char *)b->iov_base + cur->off;
            take = b->iov_len - cur->off < left ? b->iov_len - cur->off : left;
            cur->off += take;
            if (cur->off == b->iov_len) {
                cur->i++;
                cur->off = 0;
            }
        }
        if (take > 0) {
            if (EVP_EncryptUpdate(c, dst + done, &k, src, (int)take) != 1)
                return -1;
            done += k;
        }
        left -= take;
    }
    if (EVP_EncryptUpdate(c, dst + done, &k, &type, 1) != 1)
        return -1;
    done += k;
    if (EVP_EncryptFinal_ex(c, dst + done, &k) != 1)
        return -1;
    done += k;
    if ((size_t)done != len + 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, TAG, dst + done) != 1)
        return -1;
    r->wr.seq++;
    out->len += HEADER + body;
    out->p[out->len] = '\0';
    return 0;
}

static int fail_with(fr_tls_rec_t *r, const char *what) {
    r->failed = 1;
    why = what;
    ERR_clear_error();
    return -1;
}

int fr_tls_rec_write(fr_tls_rec_t *r, const struct iovec *bufs, size_t nbufs, fr_buf_t *out) {
    if (r->failed)
        return -1;
    size_t total = 0;
    for (size_t i = 0; i < nbufs; i++)
        total += bufs[i].iov_len;
    cursor_t cur = {bufs, nbufs, 0, 0};
    while (total > 0) {
        size_t len = total < MAX_CONTENT ? total : MAX_CONTENT;
        if (seal(r, T_DATA, &cur, NULL, len, out) < 0)
            return fail_with(r, "cannot encrypt a record");
        total -= len;
    }
    return 0;
}

int fr_tls_rec_key_update(fr_tls_rec_t *r, int request, fr_buf_t *out) {
    if (r->failed)
        return -1;
    const unsigned char ku[5] = {HS_KEY_UPDATE, 0, 0, 1, request ? 1 : 0};
    if (seal(r, T_HANDSHAKE, NULL, ku, sizeof ku, out) < 0 || update_dir(r, &r->wr, 1) < 0)
        return fail_with(r, "cannot update the write key");
    return 0;
}

static void send_alert(fr_tls_rec_t *r, unsigned char level, unsigned char desc, fr_buf_t *out) {
    const unsigned char a[2] = {level, desc};
    (void)seal(r, T_ALERT, NULL, a, sizeof a, out);
}

void fr_tls_rec_close_notify(fr_tls_rec_t *r, fr_buf_t *out) {
    if (!r->failed)
        send_alert(r, 1, A_CLOSE_NOTIFY, out);
}

/* ---- reading ------------------------------------------------------------------------------- */

/* Fails the session for what the peer sent, with an alert telling it why. */
static ssize_t refuse(fr_tls_rec_t *r, unsigned char desc, const char *what, fr_buf_t *out) {
    send_alert(r, 2, desc, out);
    fail_with(r, what);
    return FR_TLS_ERROR;
}

/* Decrypts the record body (ciphertext then tag, len bytes) under header hdr into dst (which may
 * be body itself). Returns the inner plaintext's length, or -1 when the tag is wrong. */
static ssize_t open_record(fr_tls_rec_t *r, const unsigned char *hdr, const unsigned char *body,
                           size_t len, unsigned char *dst) {
    unsigned char nonce[IV];
    nonce_of(&r->rd, nonce);
    EVP_CIPHER_CTX *c = r->rd.aead;
    int k, done = 0;
    size_t clen = len - TAG;
    if (EVP_DecryptInit_ex(c, NULL, NULL, NULL, nonce) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, TAG, (void *)(body + clen)) != 1 ||
        EVP_DecryptUpdate(c, NULL, &k, hdr, HEADER) != 1 ||
        EVP_DecryptUpdate(c, dst, &k, body, (int)clen) != 1)
        return -1;
    done = k;
    if (EVP_DecryptFinal_ex(c, dst + done, &k) != 1)
        return -1;
    r->rd.seq++;
    return (ssize_t)(done + k);
}

/* A handshake record after the handshake: only a whole KeyUpdate, alone (§4.6.3, §5.1). */
static ssize_t on_handshake(fr_tls_rec_t *r, const unsigned char *p, size_t len, fr_buf_t *out) {
    if (len < 4 || ((size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3]) > len - 4)
        return refuse(r, A_UNEXPECTED_MESSAGE,
                      "handshake message split across records (not supported)", out);
    if (p[0] != HS_KEY_UPDATE)
        return refuse(r, A_UNEXPECTED_MESSAGE, "unexpected handshake message", out);
    if (len != 5 || p[3] != 1)
        return refuse(r, A_DECODE_ERROR, "bad key update (not alone in its record)", out);
    if (p[4] > 1)
        return refuse(r, A_ILLEGAL_PARAMETER, "bad key update request", out);
    if (update_dir(r, &r->rd, 0) < 0)
        return refuse(r, A_INTERNAL_ERROR, "cannot derive the next read key", out);
    /* Asked for: ours goes under the old key, then ours changes (§4.6.3). */
    if (p[4] == 1 && fr_tls_rec_key_update(r, 0, out) < 0)
        return FR_TLS_ERROR;
    return FR_TLS_AGAIN;
}

/* An alert: close_notify ends the session; anything else fails it. */
static ssize_t on_alert(fr_tls_rec_t *r, const unsigned char *p, size_t len, fr_buf_t *out) {
    if (len != 2)
        return refuse(r, A_DECODE_ERROR, "bad alert", out);
    if (p[1] == A_CLOSE_NOTIFY) {
        r->closed = 1;
        return FR_TLS_CLOSED;
    }
    snprintf(why_buf, sizeof why_buf, "the peer sent alert %u", p[1]);
    fail_with(r, why_buf);
    return FR_TLS_ERROR;
}

/* Serves held plaintext into buf. */
static ssize_t serve_held(fr_tls_rec_t *r, char *buf, size_t cap) {
    size_t k = r->held_len < cap ? r->held_len : cap;
    memcpy(buf, r->held + r->held_off, k);
    r->held_off += k;
    r->held_len -= k;
    if (r->held_len == 0) {
        free(r->held);
        r->held = NULL;
        r->held_off = 0;
    }
    return (ssize_t)k;
}

/* Takes one whole record from the input or the partial buffer and decrypts it. Returns the
 * plaintext's length (in *plain: buf, or a heap buffer that the caller then owns), FR_TLS_AGAIN
 * when the record is not whole yet, or FR_TLS_ERROR. */
static ssize_t next_record(fr_tls_rec_t *r, const char **in, size_t *n, char *buf, size_t cap,
                           unsigned char **plain, unsigned char **heap, fr_buf_t *out) {
    while (r->hdr_len < HEADER && *n > 0) {
        r->hdr[r->hdr_len++] = (unsigned char)**in;
        (*in)++;
        (*n)--;
    }
    if (r->hdr_len < HEADER)
        return FR_TLS_AGAIN;
    const unsigned char *h = r->hdr;
    size_t len = (size_t)h[3] << 8 | h[4];
    if (!r->part) {
        /* A new record: its header is checked before any body byte is kept. */
        if (h[0] == T_CCS)
            return refuse(r, A_UNEXPECTED_MESSAGE, "change cipher spec after the handshake", out);
        if (h[0] != T_DATA)
            return refuse(r, A_UNEXPECTED_MESSAGE, "unprotected record after the handshake", out);
        if (h[1] != 3 || h[2] != 3)
            return refuse(r, A_DECODE_ERROR, "wrong version number", out);
        if (len > MAX_CIPHERTEXT)
            return refuse(r, A_RECORD_OVERFLOW, "record overflow", out);
        if (len < TAG + 1)
            return refuse(r, A_DECODE_ERROR, "record too short", out);
    }
    const unsigned char *body;
    if (!r->part && *n >= len) {
        body = (const unsigned char *)*in; /* whole in the input: decrypted from where it is */
        *in += len;
        *n -= len;
    } else {
        if (!r->part) {
            r->part = fr_malloc(len);
            r->part_len = 0;
        }
        size_t k = len - r->part_len < *n ? len - r->part_len : *n;
        memcpy(r->part + r->part_len, *in, k);
        r->part_len += k;
        *in += k;
        *n -= k;
        if (r->part_len < len)
            return FR_TLS_AGAIN;
        body = r->part;
    }
    unsigned char *dst;
    if (cap >= len - TAG) {
        dst = (unsigned char *)buf;
    } else if (r->part) {
        dst = r->part; /* in place */
    } else {
        dst = fr_malloc(len - TAG);
    }
    *heap = dst == (unsigned char *)buf ? NULL : dst;
    if (*heap == r->part)
        r->part = NULL; /* the caller owns it now */
    ssize_t got = open_record(r, r->hdr, body, len, dst);
    r->hdr_len = 0;
    free(r->part);
    r->part = NULL;
    if (got < 0) {
        free(*heap);
        *heap = NULL;
        return refuse(r, A_BAD_RECORD_MAC, "bad record mac", out);
    }
    *plain = dst;
    return got;
}

ssize_t fr_tls_rec_read(fr_tls_rec_t *r, const char **in, size_t *n, char *buf, size_t cap,
                        fr_buf_t *out) {
    if (r->failed)
        return FR_TLS_ERROR;
    if (r->held)
        return serve_held(r, buf, cap);
    if (r->closed)
        return FR_TLS_CLOSED;
    for (;;) {
        unsigned char *plain = NULL, *heap = NULL;
        ssize_t got = next_record(r, in, n, buf, cap, &plain, &heap, out);
        if (got <= 0)
            return got;
        /* The inner type is the last non-zero byte; zeros after it are padding (§5.4). */
        size_t len = (size_t)got;
        while (len > 0 && plain[len - 1] == 0)
            len--;
        ssize_t rc;
        if (len == 0) {
            rc = refuse(r, A_UNEXPECTED_MESSAGE, "record without a content type", out);
        } else {
            unsigned char type = plain[--len];
            if (len > MAX_CONTENT)
                rc = refuse(r, A_RECORD_OVERFLOW, "record overflow", out);
            else if (type == T_DATA && len == 0)
                rc = FR_TLS_AGAIN; /* an empty data record (§5.4 allows it): next one */
            else if (type == T_DATA && !heap)
                return (ssize_t)len;
            else if (type == T_DATA) {
                r->held = heap;
                r->held_off = 0;
                r->held_len = len;
                return serve_held(r, buf, cap);
            } else if (type == T_ALERT)
                rc = on_alert(r, plain, len, out);
            else if (type == T_HANDSHAKE)
                rc = on_handshake(r, plain, len, out);
            else
                rc = refuse(r, A_UNEXPECTED_MESSAGE, "unexpected record type", out);
        }
        free(heap);
        if (rc != FR_TLS_AGAIN)
            return rc;
    }
}
