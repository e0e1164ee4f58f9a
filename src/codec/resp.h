/* RESP, the Redis protocol, for the commands the Redis broker sends on its hot path: a command
 * is an array of bulk strings,
 *
 *   *<argc>\r\n  then per argument  $<len>\r\n<bytes>\r\n
 *
 * hiredis formats its commands with a printf-like builder that costs several thousand
 * instructions per command; the broker formats a publish here, in one pass, and hands the
 * bytes to hiredis as they are (redisAsyncFormattedCommand), building a call piece by piece
 * (fr_resp_prefix, fr_resp_bulk). Pure codec: no I/O; the only
 * allocation is the caller's when the command does not fit its buffer. */
#ifndef FR_RESP_H
#define FR_RESP_H

#include <stddef.h>

/* The most bytes fr_resp_prefix writes, and what fr_resp_bulk adds to the bytes themselves. */
#define FR_RESP_PREFIX_MAX 23
#define FR_RESP_BULK_EXTRA 25

/* "<kind><n>\r\n" at out (kind '*' starts an array of n, '$' a bulk string of n bytes);
 * returns the bytes written. */
size_t fr_resp_prefix(char *out, char kind, size_t n);

/* "$<len>\r\n<bytes>\r\n" at out (room for len + FR_RESP_BULK_EXTRA); returns the bytes
 * written. */
size_t fr_resp_bulk(char *out, const char *s, size_t len);

/* The bytes the command argv[0..argc) takes (lens[i] bytes each, which may hold anything). */
size_t fr_resp_command_size(size_t argc, const char *const *argv, const size_t *lens);

/* Writes the command into out, which holds at least fr_resp_command_size(…) bytes; returns the
 * bytes written (no NUL is added). */
size_t fr_resp_command_write(char *out, size_t argc, const char *const *argv, const size_t *lens);

#endif
