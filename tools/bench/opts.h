/* Command-line options: parsing, validation (only 127.0.0.0/8 may be loaded) and usage. */
#ifndef FR_OPTS_H
#define FR_OPTS_H

#include <stdio.h>

#include "bench.h"

/* Fills `o` from argv. Returns 0 to run, 1 when --help or --version was printed, 2 on a usage
 * error (already printed on stderr). */
int fr_opts_parse(fr_opts_t *o, int argc, char **argv);
void fr_opts_usage(FILE *out);

#endif
