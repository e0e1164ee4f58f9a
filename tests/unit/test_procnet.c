/* Socket states by local port from /proc/net/tcp{,6} text (codec/procnet.c). */
#include <string.h>

#include "fr_test.h"
#include "codec/procnet.h"

static const char tcp4[] =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
    "timeout inode\n"
    "   0: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        "
    "0 1001 1 0000000000000000 100 0 0 10 0\n"
    "   1: 0100007F:0BB8 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        "
    "0 1002 1 0000000000000000 20 4 30 10 -1\n"
    "   2: 0100007F:9C40 0100007F:0BB8 01 00000000:00000000 00:00000000 00000000     0        "
    "0 1003 1 0000000000000000 20 4 30 10 -1\n"
    "   3: 0100007F:0BB8 0100007F:9C41 06 00000000:00000000 03:00000F9E 00000000     0        "
    "0 0 3 0000000000000000\n"
    "  10: 0100007F:0BB8 0100007F:9C42 08 00000000:00000000 00:00000000 00000000     0        "
    "0 1004 1 0000000000000000 20 4 30 10 -1\n"
    "  11: 0100007F:0BB9 0100007F:9C43 08 00000000:00000000 00:00000000 00000000     0        "
    "0 1005 1 0000000000000000 20 4 30 10 -1\n";

static const char tcp6[] =
    "  sl  local_address                         remote_address                        st "
    "tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    "   0: 00000000000000000000000001000000:0BB8 00000000000000000000000001000000:A000 01 "
    "00000000:00000000 00:00000000 00000000     0        0 2001 1 0000000000000000 20 4 0 10 "
    "-1\n";

static void test_counts_by_state_for_the_port(void) {
    unsigned long c[FR_TCP_STATES] = {0};
    CHECK_EQ_INT(fr_procnet_count(tcp4, strlen(tcp4), 3000, c), 4);
    CHECK_EQ_INT(c[10], 1); /* listen */
    CHECK_EQ_INT(c[1], 1);  /* established: the server's side only, not the client's */
    CHECK_EQ_INT(c[6], 1);  /* time_wait */
    CHECK_EQ_INT(c[8], 1);  /* close_wait; 3001's is not counted */
    CHECK_EQ_INT(fr_procnet_count(tcp6, strlen(tcp6), 3000, c), 1);
    CHECK_EQ_INT(c[1], 2);
    CHECK_EQ_STR(fr_tcp_state_names[6], "time_wait");
    CHECK_EQ_STR(fr_tcp_state_names[8], "close_wait");
}

static void test_bad_lines_are_skipped(void) {
    static const char *const bad[] = {
        "header\n   0: 0100007F:0BB8 00000000:0000 0Z\n",
        "header\n   0: 0100007F:0BB8 00000000:0000 00\n",  /* no state 0 */
        "header\n   0: 0100007F:0BB8 00000000:0000 0D\n",  /* past the last state */
        "header\n   0 0100007F:0BB8 00000000:0000 01\n",
        "header\n   0: 0100007F0BB8 00000000:0000 01\n",
        "header\n   0: 0100007F:0BB8 00000000:0000",
        "   0: 0100007F:0BB8 00000000:0000 01\n", /* the first line is the header */
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        unsigned long c[FR_TCP_STATES] = {0};
        CHECK_EQ_INT(fr_procnet_count(bad[i], strlen(bad[i]), 3000, c), 0);
    }
    /* A line without its newline at the end of the text still counts. */
    unsigned long c[FR_TCP_STATES] = {0};
    const char *last = "h\n   0: 0100007F:0BB8 00000000:0000 01";
    CHECK_EQ_INT(fr_procnet_count(last, strlen(last), 3000, c), 1);
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_counts_by_state_for_the_port);
    FR_RUN(test_bad_lines_are_skipped);
    return FR_TEST_END();
}
