/* The kernel's socket tables as text (/proc/net/tcp and /proc/net/tcp6): counts of TCP sockets
 * by state for one local port. No I/O: the caller reads the file. */
#ifndef FR_PROCNET_H
#define FR_PROCNET_H

#include <stddef.h>

/* The kernel's TCP states (include/net/tcp_states.h), indexed by their number. */
enum { FR_TCP_STATES = 13 };
extern const char *const fr_tcp_state_names[FR_TCP_STATES]; /* [0] and unknown: NULL */

/* Adds to counts[state] one per socket of the table whose local port is `port`. Lines that do
 * not parse are skipped (the first line is the header). Returns the sockets counted. */
size_t fr_procnet_count(const char *text, size_t len, unsigned port,
                        unsigned long counts[FR_TCP_STATES]);

#endif
