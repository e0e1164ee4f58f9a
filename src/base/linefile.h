/* A file of log lines written by a thread of its own (the access log): writers on event loops
 * only copy a line into a bounded buffer under a lock, so a slow disk never blocks a loop.
 * When the buffer is full the line is dropped and counted. "stderr" writes to the standard
 * error instead of a file.
 *
 * Reopening (after logrotate has moved the file away) happens on the writer thread: the
 * current buffer goes to the old file, the next to a file opened anew at the same path. */
#ifndef FR_LINEFILE_H
#define FR_LINEFILE_H

#include <stddef.h>

typedef struct fr_linefile_s fr_linefile_t;

/* Opens path for appending (created with mode 0640) and starts the writer. NULL with the
 * reason in err when the file cannot be opened. */
fr_linefile_t *fr_linefile_open(const char *path, char *err, size_t errcap);
/* Queues bytes (whole lines); any thread. */
void fr_linefile_write(fr_linefile_t *f, const char *bytes, size_t len);
/* Asks the writer to reopen the path before it writes again; any thread, cheap. */
void fr_linefile_reopen(fr_linefile_t *f);
/* Lines dropped because the buffer was full. */
unsigned long fr_linefile_dropped(fr_linefile_t *f);
/* Writes what is queued, stops the writer, closes the file and frees f. */
void fr_linefile_close(fr_linefile_t *f);

#endif
