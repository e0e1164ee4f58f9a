/* A Redis URL, parsed (broker/redis_url.c): the broker's, and the app's own Redis that
 * freshet.redis talks to (client/redis_client.h). Pure parsing, no I/O. */
#ifndef FR_BROKER_REDIS_URL_H
#define FR_BROKER_REDIS_URL_H

#include <stddef.h>

/* A host (a name or an IP address) and a port. */
typedef struct {
    char host[256];
    int port;
} fr_redis_addr_t;

typedef struct {
    int sentinel;               /* redis-sentinel:// */
    fr_redis_addr_t addr;       /* redis://: the one address */
    char *unix_path;            /* unix://: owned, else NULL */
    fr_redis_addr_t *sentinels; /* redis-sentinel://: owned */
    size_t nsentinels;
    char *master;               /* the master name the Sentinels monitor; owned */
    char *user, *password;      /* owned, may be NULL */
    int db;
    unsigned replicas;          /* a publish is answered once this many replicas have it */
    unsigned wait_ms;           /* … or after this long (503) */
} fr_redis_url_t;

/* Parses a Redis URL (the forms fr_redis_url_check lists) into u (zeroed first). Returns 0,
 * or -1 with a message in err and nothing to free. */
int fr_redis_url_parse(const char *url, fr_redis_url_t *u, char *err, size_t errlen);
void fr_redis_url_free(fr_redis_url_t *u);

#endif
