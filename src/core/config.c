#include "core/config.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"

void fr_config_defaults(fr_config_t *cfg) {
    memset(cfg, 0, sizeof *cfg);
    strcpy(cfg->host, "127.0.0.1");
    cfg->port = 3000;
    cfg->heartbeat_ms = 15000;
    cfg->retry_ms = 3000;
    cfg->replay_events = 1000;
    cfg->replay_ms = 300000;
    cfg->max_body = 65536;
    cfg->max_headers = 16384;
    cfg->max_header_lines = 100;
    cfg->streams_at = 0.9;
    cfg->budget = 1000000;
    cfg->memory_kb = 128 * 1024;
    cfg->default_tier.name = NULL;
    cfg->default_tier.queue = 256;
    cfg->default_tier.bytes = 1u << 20;
    cfg->default_tier.lag = 1000;
    cfg->header_timeout_ms = 10000;
    cfg->idle_timeout_ms = 60000;
    cfg->hook_timeout_ms = 5000;
    cfg->backend_response = 1u << 20;
    cfg->backend_calls = 256;
    cfg->backend_idle = 64;
    cfg->calls_per_hook = 8;
    cfg->h2_streams = 128;
    cfg->redis_calls = 1024;
    cfg->redis_timeout_ms = 1000;
    cfg->drain_ms = 5000;
    cfg->poll_timeout_ms = 25000;
    cfg->workers = 1;
    cfg->log_level = -1;
    cfg->admin_port = -1;
}

void fr_config_free(fr_config_t *cfg) {
    free(cfg->broker);
    free(cfg->redis);
    free(cfg->access_log);
    for (size_t i = 0; i < cfg->ntiers; i++)
        free(cfg->tiers[i].name);
    free(cfg->tiers);
    for (size_t i = 0; i < cfg->ncors; i++)
        free(cfg->cors[i]);
    free(cfg->cors);
    free(cfg->tls_cert);
    free(cfg->tls_key);
    memset(cfg, 0, sizeof *cfg);
}

uint64_t fr_config_ack_ms(const fr_config_t *cfg) {
    return cfg->ack_timeout_ms ? cfg->ack_timeout_ms : 2 * cfg->heartbeat_ms;
}

int fr_config_parse_listen(const char *s, char *host, size_t hostlen, int *port) {
    const char *colon;
    const char *h = s;
    size_t hl;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':')
            return -1;
        h = s + 1;
        hl = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -1;
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= hostlen)
        return -1;
    long p = 0;
    const char *d = colon + 1;
    if (*d == '\0')
        return -1;
    for (; *d; d++) {
        if (*d < '0' || *d > '9' || p > 65535)
            return -1;
        p = p * 10 + (*d - '0');
    }
    if (p > 65535)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}

const fr_tier_t *fr_config_tier(const fr_config_t *cfg, const char *name) {
    for (size_t i = 0; i < cfg->ntiers; i++) {
        if (strcmp(cfg->tiers[i].name, name) == 0)
            return &cfg->tiers[i];
    }
    return NULL;
}

int fr_config_cors_allows(const fr_config_t *cfg, const char *origin) {
    for (size_t i = 0; i < cfg->ncors; i++) {
        if (strcmp(cfg->cors[i], "*") == 0 || strcmp(cfg->cors[i], origin) == 0)
            return 1;
    }
    return 0;
}

void fr_config_copy(fr_config_t *dst, const fr_config_t *src) {
    *dst = *src;
    dst->broker = src->broker ? fr_strdup(src->broker) : NULL;
    dst->redis = src->redis ? fr_strdup(src->redis) : NULL;
    dst->access_log = src->access_log ? fr_strdup(src->access_log) : NULL;
    dst->tiers = fr_calloc(src->ntiers, sizeof *dst->tiers);
    for (size_t i = 0; i < src->ntiers; i++) {
        dst->tiers[i] = src->tiers[i];
        dst->tiers[i].name = fr_strdup(src->tiers[i].name);
    }
    dst->cors = fr_calloc(src->ncors, sizeof *dst->cors);
    for (size_t i = 0; i < src->ncors; i++)
        dst->cors[i] = fr_strdup(src->cors[i]);
    dst->tls_cert = src->tls_cert ? fr_strdup(src->tls_cert) : NULL;
    dst->tls_key = src->tls_key ? fr_strdup(src->tls_key) : NULL;
}

int fr_slow_parse(const char *s, fr_slow_t *out) {
    static const char *const names[] = {"drop", "conflate", "disconnect"};
    for (int i = 0; i < 3; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (fr_slow_t)i;
            return 0;
        }
    }
    return -1;
}
