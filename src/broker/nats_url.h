/* A NATS broker URL, parsed (broker/nats_url.c). Pure parsing, no I/O:
 *
 *   nats://[user:password@]host[:port][,host[:port]...][?params]
 *   params, joined by '&':
 *     replicas=N   1-5 (default 1): the stream's replicas; a publish is acknowledged once a
 *                  majority of them stored it
 *     stream=NAME  A-Z a-z 0-9 _ - (default "freshet"): the JetStream stream, and the subjects'
 *                  prefix fr.NAME; every app sharing one NATS needs its own
 *
 * The port defaults to 4222; an IPv6 address is written [addr]:port. */
#ifndef FR_BROKER_NATS_URL_H
#define FR_BROKER_NATS_URL_H

#include <stddef.h>

#define FR_NATS_MAX_SERVERS 16

typedef struct {
    char **servers;   /* owned: "nats://[user:password@]host:port", one per address */
    size_t nservers;
    char stream[65];  /* the stream's name */
    unsigned replicas;
} fr_nats_url_t;

/* Parses url into u (zeroed first). Returns 0, or -1 with a message in err and nothing to
 * free. */
int fr_nats_url_parse(const char *url, fr_nats_url_t *u, char *err, size_t errlen);
void fr_nats_url_free(fr_nats_url_t *u);

#endif
