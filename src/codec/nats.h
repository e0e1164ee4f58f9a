/* What freshet reads and writes on NATS that is not NATS' own protocol (the client library
 * speaks that): topic names as subject tokens, and JetStream's answer to a publish. Pure codec:
 * no allocation, no I/O.
 *
 * A topic is one subject token. Bytes A-Z a-z 0-9 '_' and '-' stand for themselves; every other
 * byte (including '.', '*', '>', spaces, '=' itself and each byte of a multi-byte UTF-8
 * character) is written "=XX", two upper-case hex digits:
 *
 *   "room:42"   → "room=3A42"        "a.b c"  → "a=2Eb=20c"        "é" → "=C3=A9"
 *
 * The encoding is one-to-one (a token decodes to exactly one topic, and only its canonical
 * spelling is accepted back), so a subject never names two topics. */
#ifndef FR_CODEC_NATS_H
#define FR_CODEC_NATS_H

#include <stddef.h>
#include <stdint.h>

/* The longest token a topic of `len` bytes can need (without the NUL). */
#define FR_NATS_TOKEN_MAX(len) ((len) * 3)

/* Writes the token of topic[0..len) into out (at least FR_NATS_TOKEN_MAX(len) + 1 bytes) and
 * NUL-terminates it; returns its length. */
size_t fr_nats_token_encode(const char *topic, size_t len, char *out);

/* Decodes a token into out (at least len + 1 bytes), NUL-terminated. Returns the topic's
 * length, or -1 when the token is empty, holds a byte the encoder never writes, a malformed or
 * lower-case escape, an escape of a byte that stands for itself, or an escaped NUL. */
long fr_nats_token_decode(const char *token, size_t len, char *out);

/* JetStream's answer to a publish (a PubAck):
 *   {"stream":"<name>","seq":<n>[,"duplicate":true][,"domain":"…"]}
 *   {"error":{"code":<http status>,"err_code":<n>,"description":"<text>"}[,"stream":…]}
 * Returns 0 with *seq (> 0), 1 when JetStream refused the publish (code and description, the
 * text truncated to fit desc_cap bytes with its NUL; JSON escapes are kept as sent), or -1 when
 * the text is not such an answer. Members may come in any order; unknown members are skipped
 * whatever their value, nested up to 16 levels. */
int fr_nats_puback_parse(const char *s, size_t len, uint64_t *seq, int *code, char *desc,
                         size_t desc_cap);

#endif
