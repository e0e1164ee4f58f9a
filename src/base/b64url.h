/* base64url digits (RFC 4648 §5), header-only: src/lua/crypto.c is also built on its own as the
 * freshet.crypto Lua module, with no other freshet object to link against. JWT parts and the
 * ids of several topics (codec/ids.c) are written in them. */
#ifndef FR_B64URL_H
#define FR_B64URL_H

/* The 64 digits in order of value. */
#define FR_B64URL_DIGITS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

/* The value of byte c as a digit, or -1 when it is none. */
static inline int fr_b64url_value(unsigned char c) {
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

#endif
