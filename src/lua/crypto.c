#include "lua/crypto.h"

#include <lauxlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "base/b64url.h"

/* The largest input the codecs take. libcrypto's block codecs count in int; a token or a key
 * is never near this, so the bound only keeps the size arithmetic below from overflowing. */
#define CRYPTO_MAX_INPUT (1u << 30)
/* random_bytes is for keys, nonces and ids, not for bulk data. */
#define CRYPTO_MAX_RANDOM (1 << 20)

/* Raises "<file>:<line>: freshet.crypto.<fn>: <message>" with the message on the stack top.
 * Level 1 is the Lua code that called the C function, as error(msg, 2) blames in Lua. */
static int raise(lua_State *L, const char *fn) {
    luaL_where(L, 1);
    lua_pushfstring(L, "freshet.crypto.%s: ", fn);
    lua_pushvalue(L, -3);
    lua_concat(L, 3);
    return lua_error(L);
}

static int raise_arg(lua_State *L, const char *fn, int idx, const char *name,
                     const char *expected) {
    lua_pushfstring(L, "bad argument #%d '%s' (%s expected, got %s)", idx, name, expected,
                    luaL_typename(L, idx));
    return raise(L, fn);
}

/* Argument idx must be a string (numbers are not coerced: a number where bytes are expected is
 * a mistake worth hearing about). */
static const char *check_bytes(lua_State *L, int idx, const char *fn, const char *name,
                               size_t *len) {
    if (lua_type(L, idx) != LUA_TSTRING)
        raise_arg(L, fn, idx, name, "string");
    const char *s = lua_tolstring(L, idx, len);
    if (*len > CRYPTO_MAX_INPUT) {
        lua_pushfstring(L, "bad argument #%d '%s' (at most 1 GiB)", idx, name);
        raise(L, fn);
    }
    return s;
}

/* Scratch memory owned by the Lua GC: an error raised while it is in use cannot leak it. */
static unsigned char *scratch(lua_State *L, size_t n) {
    return lua_newuserdata(L, n ? n : 1);
}

static int push_failure(lua_State *L, const char *msg) {
    lua_pushnil(L);
    lua_pushstring(L, msg);
    return 2;
}

/* hmac_sha256(key, msg) → the 32-byte MAC */
static int l_crypto_hmac_sha256(lua_State *L) {
    size_t klen, mlen;
    const char *key = check_bytes(L, 1, "hmac_sha256", "key", &klen);
    const char *msg = check_bytes(L, 2, "hmac_sha256", "msg", &mlen);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (!HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, mlen, mac, &maclen)) {
        ERR_clear_error();
        return push_failure(L, "HMAC-SHA256 failed in libcrypto");
    }
    lua_pushlstring(L, (const char *)mac, maclen);
    return 1;
}

/* sha256(msg) → the 32-byte digest */
static int l_crypto_sha256(lua_State *L) {
    size_t mlen;
    const char *msg = check_bytes(L, 1, "sha256", "msg", &mlen);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(msg, mlen, md, &mdlen, EVP_sha256(), NULL)) {
        ERR_clear_error();
        return push_failure(L, "SHA-256 failed in libcrypto");
    }
    lua_pushlstring(L, (const char *)md, mdlen);
    return 1;
}

/* base64url_encode(bytes) → text: RFC 4648 section 5 alphabet, no '=' padding (as JWS wants) */
static int l_crypto_base64url_encode(lua_State *L) {
    size_t n;
    const char *in = check_bytes(L, 1, "base64url_encode", "data", &n);
    size_t cap = 4 * ((n + 2) / 3) + 1; /* EVP_EncodeBlock writes a NUL after the text */
    unsigned char *out = scratch(L, cap);
    int len = EVP_EncodeBlock(out, (const unsigned char *)in, (int)n);
    while (len > 0 && out[len - 1] == '=')
        len--;
    for (int i = 0; i < len; i++) {
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
    }
    lua_pushlstring(L, (const char *)out, (size_t)len);
    return 1;
}

/* base64url_decode(text) → bytes | nil, err
 *
 * Strict, because it reads signatures and token parts: only the URL-safe alphabet, no
 * whitespace, '=' padding only where it belongs, and the unused low bits of the last digit
 * must be zero — so each byte string has exactly one accepted encoding. libcrypto's decoder
 * is lenient on all of these, so the text is checked here first and then translated to the
 * standard alphabet for it. */
static int l_crypto_base64url_decode(lua_State *L) {
    size_t n;
    const char *in = check_bytes(L, 1, "base64url_decode", "text", &n);
    size_t pad = 0;
    while (pad < n && pad < 3 && in[n - 1 - pad] == '=')
        pad++;
    size_t digits = n - pad;
    if (pad > 0 && (n % 4 != 0 || pad > 2))
        return push_failure(L, "invalid base64url: misplaced '=' padding");
    if (digits % 4 == 1)
        return push_failure(L, "invalid base64url: impossible length");
    if (pad > 0 && (4 - digits % 4) % 4 != pad)
        return push_failure(L, "invalid base64url: misplaced '=' padding");
    for (size_t i = 0; i < digits; i++) {
        if (fr_b64url_value((unsigned char)in[i]) < 0) {
            lua_pushnil(L);
            if (in[i] == '=')
                lua_pushstring(L, "invalid base64url: misplaced '=' padding");
            else
                lua_pushfstring(L, "invalid base64url: unexpected character at position %d",
                                (int)i + 1);
            return 2;
        }
    }
    if (digits % 4 != 0) {
        /* 2 digits carry 1 byte (4 spare bits), 3 digits carry 2 bytes (2 spare bits). */
        int last = fr_b64url_value((unsigned char)in[digits - 1]);
        int spare = digits % 4 == 2 ? 0x0f : 0x03;
        if (last & spare)
            return push_failure(L, "invalid base64url: non-zero trailing bits");
    }
    size_t tail = (4 - digits % 4) % 4;
    size_t padded = digits + tail;
    unsigned char *buf = scratch(L, padded + 1 + padded / 4 * 3 + 1);
    unsigned char *out = buf + padded + 1;
    for (size_t i = 0; i < digits; i++) {
        char c = in[i];
        buf[i] = (unsigned char)(c == '-' ? '+' : c == '_' ? '/' : c);
    }
    memset(buf + digits, '=', tail);
    buf[padded] = '\0';
    int len = padded ? EVP_DecodeBlock(out, buf, (int)padded) : 0;
    if (len < 0) {
        ERR_clear_error();
        return push_failure(L, "invalid base64url");
    }
    /* EVP_DecodeBlock counts the bytes that padding stands for as zeros; drop them. */
    lua_pushlstring(L, (const char *)out, (size_t)len - tail);
    return 1;
}

/* constant_time_equal(a, b) → boolean
 *
 * The time taken depends only on the lengths, never on where the strings differ, so a caller
 * comparing a MAC it computed with one an attacker sent leaks nothing about the right MAC. The
 * lengths themselves are not secret (a MAC's length is public). */
static int l_crypto_constant_time_equal(lua_State *L) {
    size_t alen, blen;
    const char *a = check_bytes(L, 1, "constant_time_equal", "a", &alen);
    const char *b = check_bytes(L, 2, "constant_time_equal", "b", &blen);
    lua_pushboolean(L, alen == blen && CRYPTO_memcmp(a, b, alen) == 0);
    return 1;
}

/* random_bytes(n) → n bytes from libcrypto's CSPRNG | nil, err */
static int l_crypto_random_bytes(lua_State *L) {
    if (lua_type(L, 1) != LUA_TNUMBER)
        return raise_arg(L, "random_bytes", 1, "n", "number");
    lua_Number want = lua_tonumber(L, 1);
    /* The range test comes first: it also rejects NaN before the cast below could see it. */
    if (!(want >= 0 && want <= CRYPTO_MAX_RANDOM) || want != (lua_Number)(int)want) {
        lua_pushfstring(L, "bad argument #1 'n' (an integer from 0 to %d expected)",
                        CRYPTO_MAX_RANDOM);
        return raise(L, "random_bytes");
    }
    int n = (int)want;
    unsigned char *buf = scratch(L, (size_t)n);
    if (n > 0 && RAND_bytes(buf, n) != 1) {
        char err[160];
        ERR_error_string_n(ERR_get_error(), err, sizeof err);
        ERR_clear_error();
        lua_pushnil(L);
        lua_pushfstring(L, "the random generator failed: %s", err);
        return 2;
    }
    lua_pushlstring(L, (const char *)buf, (size_t)n);
    return 1;
}

/* ---- public-key signatures: RS256 and ES256 ------------------------------------------------ */

/* A key is a userdata holding one EVP_PKEY, freed by the collector. The algorithm a key may
 * serve follows from the key alone (RSA of 2048 bits or more: RS256; EC on P-256: ES256), and
 * sign and verify refuse any other pairing, so a token can never choose how its signature is
 * checked. */
#define KEY_MT "freshet.crypto.key"

typedef struct {
    EVP_PKEY *pkey;
} key_ud_t;

static int key_gc(lua_State *L) {
    key_ud_t *k = luaL_checkudata(L, 1, KEY_MT);
    EVP_PKEY_free(k->pkey);
    k->pkey = NULL;
    return 0;
}

static int key_tostring(lua_State *L) {
    key_ud_t *k = luaL_checkudata(L, 1, KEY_MT);
    lua_pushfstring(L, "freshet.crypto.key (%s, %d bits)",
                    k->pkey ? EVP_PKEY_get0_type_name(k->pkey) : "freed",
                    k->pkey ? EVP_PKEY_get_bits(k->pkey) : 0);
    return 1;
}

/* Takes ownership of pkey. */
static int push_key(lua_State *L, EVP_PKEY *pkey) {
    key_ud_t *k = lua_newuserdata(L, sizeof *k);
    k->pkey = pkey;
    if (luaL_newmetatable(L, KEY_MT)) {
        lua_pushcfunction(L, key_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, key_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, "freshet.crypto.key");
        lua_setfield(L, -2, "__metatable");
    }
    lua_setmetatable(L, -2);
    return 1;
}

static EVP_PKEY *check_key(lua_State *L, int idx, const char *fn) {
    key_ud_t *k = lua_touserdata(L, idx);
    if (!k || !lua_getmetatable(L, idx))
        raise_arg(L, fn, idx, "key", "freshet.crypto.key");
    luaL_getmetatable(L, KEY_MT);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (!same || !k->pkey)
        raise_arg(L, fn, idx, "key", "freshet.crypto.key");
    return k->pkey;
}

/* Pushes nil and "<what>: <libcrypto's reason>". */
static int push_ssl_failure(lua_State *L, const char *what) {
    char err[200] = "";
    unsigned long e = ERR_peek_last_error();
    if (e)
        ERR_error_string_n(e, err, sizeof err);
    ERR_clear_error();
    lua_pushnil(L);
    lua_pushfstring(L, "%s%s%s", what, err[0] ? ": " : "", err);
    return 2;
}

static int is_private(const EVP_PKEY *pkey) {
    BIGNUM *bn = NULL;
    int id = EVP_PKEY_get_base_id(pkey);
    const char *name = id == EVP_PKEY_RSA ? OSSL_PKEY_PARAM_RSA_D : OSSL_PKEY_PARAM_PRIV_KEY;
    int has = EVP_PKEY_get_bn_param(pkey, name, &bn) == 1 && bn != NULL;
    BN_clear_free(bn);
    ERR_clear_error();
    return has;
}

/* "P-256" for a key on prime256v1, else NULL. */
static const char *key_curve(const EVP_PKEY *pkey) {
    char group[64];
    size_t len = 0;
    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC ||
        EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                       &len) != 1) {
        ERR_clear_error();
        return NULL;
    }
    return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0 ? "P-256" : NULL;
}

/* The one algorithm a key serves: "RS256", "ES256", or NULL (a key freshet does not use). */
static const char *key_alg(const EVP_PKEY *pkey) {
    if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA)
        return EVP_PKEY_get_bits(pkey) >= 2048 ? "RS256" : NULL; /* RFC 7518 3.3 */
    return key_curve(pkey) ? "ES256" : NULL;
}

/* key_from_pem(pem) → key | nil, err
 * A public key (PUBLIC KEY, RSA PUBLIC KEY), a private key (PRIVATE KEY, RSA PRIVATE KEY,
 * EC PRIVATE KEY: it can sign too) or a certificate (its public key). */
static int l_crypto_key_from_pem(lua_State *L) {
    size_t len;
    const char *pem = check_bytes(L, 1, "key_from_pem", "pem", &len);
    EVP_PKEY *pkey = NULL;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    OSSL_DECODER_CTX *dctx =
        bio ? OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", NULL, NULL, 0, NULL, NULL) : NULL;
    if (dctx && OSSL_DECODER_from_bio(dctx, bio) != 1)
        pkey = NULL;
    OSSL_DECODER_CTX_free(dctx);
    if (!pkey && bio && BIO_reset(bio) == 1) {
        X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (cert)
            pkey = X509_get_pubkey(cert);
        X509_free(cert);
    }
    BIO_free(bio);
    if (!pkey)
        return push_ssl_failure(L, "not a PEM public key, private key or certificate");
    if (!key_alg(pkey)) {
        EVP_PKEY_free(pkey);
        ERR_clear_error();
        return push_failure(L, "unsupported key: only RSA of 2048 bits or more (RS256) and EC "
                               "on P-256 (ES256)");
    }
    ERR_clear_error();
    return push_key(L, pkey);
}

/* Builds a public key from OSSL parameters. */
static EVP_PKEY *key_from_params(const char *type, OSSL_PARAM_BLD *bld) {
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = params ? EVP_PKEY_CTX_new_from_name(NULL, type, NULL) : NULL;
    if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    if (pkey) {
        /* A point off the curve (or a malformed modulus) is refused here, not at verify. */
        EVP_PKEY_CTX *check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
        if (!check || EVP_PKEY_public_check(check) != 1) {
            EVP_PKEY_free(pkey);
            pkey = NULL;
        }
        EVP_PKEY_CTX_free(check);
    }
    return pkey;
}

/* key_from_jwk_rsa(n, e) → key | nil, err: n and e as big-endian bytes (a JWK's, decoded) */
static int l_crypto_key_from_jwk_rsa(lua_State *L) {
    size_t nlen, elen;
    const char *n = check_bytes(L, 1, "key_from_jwk_rsa", "n", &nlen);
    const char *e = check_bytes(L, 2, "key_from_jwk_rsa", "e", &elen);
    if (nlen == 0 || elen == 0 || elen > 8)
        return push_failure(L, "malformed RSA key: n and e must not be empty, e at most 8 bytes");
    BIGNUM *bn_n = BN_bin2bn((const unsigned char *)n, (int)nlen, NULL);
    BIGNUM *bn_e = BN_bin2bn((const unsigned char *)e, (int)elen, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;
    if (bn_n && bn_e && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e))
        pkey = key_from_params("RSA", bld);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    if (!pkey)
        return push_ssl_failure(L, "malformed RSA key");
    if (!key_alg(pkey)) {
        EVP_PKEY_free(pkey);
        return push_failure(L, "unsupported key: an RSA key needs 2048 bits or more");
    }
    return push_key(L, pkey);
}

/* key_from_jwk_ec(crv, x, y) → key | nil, err: crv "P-256", x and y 32 bytes each */
static int l_crypto_key_from_jwk_ec(lua_State *L) {
    size_t clen, xlen, ylen;
    const char *crv = check_bytes(L, 1, "key_from_jwk_ec", "crv", &clen);
    const char *x = check_bytes(L, 2, "key_from_jwk_ec", "x", &xlen);
    const char *y = check_bytes(L, 3, "key_from_jwk_ec", "y", &ylen);
    if (strcmp(crv, "P-256") != 0)
        return push_failure(L, "unsupported curve: only P-256 (ES256)");
    if (xlen != 32 || ylen != 32)
        return push_failure(L, "malformed EC key: x and y must be 32 bytes each on P-256");
    unsigned char point[65];
    point[0] = 0x04; /* uncompressed */
    memcpy(point + 1, x, 32);
    memcpy(point + 33, y, 32);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;
    if (bld &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point))
        pkey = key_from_params("EC", bld);
    OSSL_PARAM_BLD_free(bld);
    if (!pkey)
        return push_ssl_failure(L, "malformed EC key (not a point on P-256)");
    return push_key(L, pkey);
}

/* key_info(key) → alg ("RS256" | "ES256"), bits, private (boolean) */
static int l_crypto_key_info(lua_State *L) {
    EVP_PKEY *pkey = check_key(L, 1, "key_info");
    lua_pushstring(L, key_alg(pkey));
    lua_pushinteger(L, EVP_PKEY_get_bits(pkey));
    lua_pushboolean(L, is_private(pkey));
    return 3;
}

/* The algorithm argument must be the key's own: anything else raises (a caller bug, or an
 * attempt to make a key serve an algorithm it was not meant for). */
static void check_alg(lua_State *L, EVP_PKEY *pkey, const char *fn) {
    size_t len;
    const char *alg = check_bytes(L, 2, fn, "alg", &len);
    const char *own = key_alg(pkey);
    if (!own || strcmp(alg, own) != 0) {
        lua_pushfstring(L, "algorithm '%s' does not match the key (%s)", alg, own ? own : "none");
        raise(L, fn);
    }
}

/* The raw r||s of a JWS ECDSA signature (RFC 7518 3.4) as the DER libcrypto verifies; NULL
 * when it is not 64 bytes. Caller frees with OPENSSL_free. */
static unsigned char *ecdsa_raw_to_der(const unsigned char *sig, size_t len, int *der_len) {
    if (len != 64)
        return NULL;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
    unsigned char *der = NULL;
    if (es && r && s && ECDSA_SIG_set0(es, r, s) == 1) {
        r = s = NULL; /* owned by es now */
        *der_len = i2d_ECDSA_SIG(es, &der);
        if (*der_len <= 0)
            der = NULL;
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return der;
}

/* verify(key, alg, input, sig) → boolean: sig is the token's signature, decoded */
static int l_crypto_verify(lua_State *L) {
    EVP_PKEY *pkey = check_key(L, 1, "verify");
    check_alg(L, pkey, "verify");
    size_t ilen, slen;
    const char *input = check_bytes(L, 3, "verify", "input", &ilen);
    const unsigned char *sig =
        (const unsigned char *)check_bytes(L, 4, "verify", "sig", &slen);
    unsigned char *der = NULL;
    int der_len = 0;
    if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC) {
        if (!(der = ecdsa_raw_to_der(sig, slen, &der_len))) {
            ERR_clear_error();
            lua_pushboolean(L, 0);
            return 1;
        }
        sig = der;
        slen = (size_t)der_len;
    }
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    int ok = mctx && EVP_DigestVerifyInit(mctx, NULL, EVP_sha256(), NULL, pkey) == 1 &&
             EVP_DigestVerify(mctx, sig, slen, (const unsigned char *)input, ilen) == 1;
    EVP_MD_CTX_free(mctx);
    OPENSSL_free(der);
    ERR_clear_error();
    lua_pushboolean(L, ok);
    return 1;
}

/* sign(key, alg, input) → signature (RS256: PKCS #1 v1.5; ES256: raw r||s) | nil, err */
static int l_crypto_sign(lua_State *L) {
    EVP_PKEY *pkey = check_key(L, 1, "sign");
    check_alg(L, pkey, "sign");
    size_t ilen;
    const char *input = check_bytes(L, 3, "sign", "input", &ilen);
    if (!is_private(pkey))
        return push_failure(L, "a public key cannot sign: load the private key");
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    size_t slen = 0;
    unsigned char *sig = NULL;
    if (!mctx || EVP_DigestSignInit(mctx, NULL, EVP_sha256(), NULL, pkey) != 1 ||
        EVP_DigestSign(mctx, NULL, &slen, (const unsigned char *)input, ilen) != 1) {
        EVP_MD_CTX_free(mctx);
        return push_ssl_failure(L, "signing failed");
    }
    sig = scratch(L, slen);
    int ok = EVP_DigestSign(mctx, sig, &slen, (const unsigned char *)input, ilen) == 1;
    EVP_MD_CTX_free(mctx);
    if (!ok)
        return push_ssl_failure(L, "signing failed");
    if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC) {
        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)slen);
        unsigned char raw[64];
        if (!es || BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32) != 32 ||
            BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32) != 32) {
            ECDSA_SIG_free(es);
            return push_ssl_failure(L, "signing failed");
        }
        ECDSA_SIG_free(es);
        lua_pushlstring(L, (const char *)raw, sizeof raw);
        return 1;
    }
    lua_pushlstring(L, (const char *)sig, slen);
    return 1;
}

int luaopen_freshet_crypto(lua_State *L) {
    static const luaL_Reg fns[] = {{"hmac_sha256", l_crypto_hmac_sha256},
                                   {"sha256", l_crypto_sha256},
                                   {"base64url_encode", l_crypto_base64url_encode},
                                   {"base64url_decode", l_crypto_base64url_decode},
                                   {"constant_time_equal", l_crypto_constant_time_equal},
                                   {"random_bytes", l_crypto_random_bytes},
                                   {"key_from_pem", l_crypto_key_from_pem},
                                   {"key_from_jwk_rsa", l_crypto_key_from_jwk_rsa},
                                   {"key_from_jwk_ec", l_crypto_key_from_jwk_ec},
                                   {"key_info", l_crypto_key_info},
                                   {"verify", l_crypto_verify},
                                   {"sign", l_crypto_sign},
                                   {NULL, NULL}};
    lua_newtable(L);
    luaL_register(L, NULL, fns);
    return 1;
}
