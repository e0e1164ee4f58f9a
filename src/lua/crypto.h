/* freshet.crypto: the few primitives that signed tokens need, from libcrypto — HMAC-SHA256,
 * SHA-256, unpadded base64url, a constant-time comparison, random bytes, and RS256 / ES256
 * signatures with keys from PEM or from a JWK's members (a key serves only its own algorithm:
 * RSA of 2048 bits or more RS256, EC on P-256 ES256).
 *
 * Every function raises for a wrong argument ("freshet.crypto.sha256: bad argument #1 'msg'
 * (string expected, got nil)") and returns nil, err for input that is merely bad (a base64url
 * string that does not decode). Strings are raw bytes in and out; nothing is hex-encoded.
 *
 * The server preloads the module (lua_modules.c). The entry point has the name a stand-alone
 * Lua would look for, so the same file also builds as `freshet/crypto.so` for running route
 * specs under a plain lua5.1 or luajit. For that reason the file uses only the Lua 5.1 C API
 * and nothing else from the server. */
#ifndef FR_LUA_CRYPTO_H
#define FR_LUA_CRYPTO_H

#include <lua.h>

/* Pushes the module table. */
int luaopen_freshet_crypto(lua_State *L);

#endif
