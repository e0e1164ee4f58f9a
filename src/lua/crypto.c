#include "lua/crypto.h"

#include <lauxlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

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

/* The value of a base64url digit, or -1. */
static int b64url_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
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
        if (b64url_value((unsigned char)in[i]) < 0) {
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
        int last = b64url_value((unsigned char)in[digits - 1]);
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

int luaopen_freshet_crypto(lua_State *L) {
    static const luaL_Reg fns[] = {{"hmac_sha256", l_crypto_hmac_sha256},
                                   {"sha256", l_crypto_sha256},
                                   {"base64url_encode", l_crypto_base64url_encode},
                                   {"base64url_decode", l_crypto_base64url_decode},
                                   {"constant_time_equal", l_crypto_constant_time_equal},
                                   {"random_bytes", l_crypto_random_bytes},
                                   {NULL, NULL}};
    lua_newtable(L);
    luaL_register(L, NULL, fns);
    return 1;
}
