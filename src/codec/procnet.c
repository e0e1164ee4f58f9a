#include "codec/procnet.h"

#include "base/util.h"

const char *const fr_tcp_state_names[FR_TCP_STATES] = {
    NULL,        "established", "syn_sent",  "syn_recv", "fin_wait1",
    "fin_wait2", "time_wait",   "close",     "close_wait", "last_ack",
    "listen",    "closing",     "new_syn_recv"};

/* Reads hex digits at *p up to a non-hex byte (at most 8): the value, or -1 when none. */
static long hex_field(const char **p, const char *end) {
    long v = 0;
    int n = 0;
    while (*p < end && fr_hex_value(**p) >= 0 && n < 8) {
        v = v * 16 + fr_hex_value(**p);
        (*p)++;
        n++;
    }
    return n ? v : -1;
}

static void skip_spaces(const char **p, const char *end) {
    while (*p < end && **p == ' ')
        (*p)++;
}

/* "0100007F:2E3E " (IPv4: 8 hex digits; IPv6: 32) then spaces: the port, or -1. */
static long endpoint(const char **p, const char *end) {
    while (*p < end && fr_hex_value(**p) >= 0)
        (*p)++;
    if (*p >= end || **p != ':')
        return -1;
    (*p)++;
    long port = hex_field(p, end);
    if (port < 0 || *p >= end || **p != ' ')
        return -1;
    skip_spaces(p, end);
    return port;
}

/* "  12: 0100007F:2E3E 00000000:0000 0A ..." → local port and state, or -1. */
static int parse_line(const char *p, const char *end, unsigned *port, unsigned *state) {
    skip_spaces(&p, end);
    while (p < end && *p >= '0' && *p <= '9') /* the slot number */
        p++;
    if (p >= end || *p != ':')
        return -1;
    p++;
    skip_spaces(&p, end);
    long lport = endpoint(&p, end);
    if (lport < 0 || endpoint(&p, end) < 0)
        return -1;
    long st = hex_field(&p, end);
    if (st <= 0 || st >= FR_TCP_STATES || (p < end && *p != ' '))
        return -1;
    *port = (unsigned)lport;
    *state = (unsigned)st;
    return 0;
}

size_t fr_procnet_count(const char *text, size_t len, unsigned port,
                        unsigned long counts[FR_TCP_STATES]) {
    const char *p = text, *end = text + len;
    size_t n = 0;
    int first = 1;
    while (p < end) {
        const char *eol = p;
        while (eol < end && *eol != '\n')
            eol++;
        unsigned lport, state;
        if (!first && parse_line(p, eol, &lport, &state) == 0 && lport == port) {
            counts[state]++;
            n++;
        }
        first = 0;
        p = eol < end ? eol + 1 : end;
    }
    return n;
}
