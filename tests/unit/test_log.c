/* The JSON log format: every line is one JSON object, whatever the message holds, and the note
 * about lines dropped while stderr was slow is one too. stderr is a pipe the test reads. */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fr_test.h"
#include "base/buf.h"
#include "base/log.h"
#include "base/utf8.h"

/* stderr, redirected into a pipe; the reader thread collects everything until the write end
 * closes. */
typedef struct {
    int saved_fd, rd;
    pthread_t reader;
    fr_buf_t got;
} capture_t;

static void *read_all(void *arg) {
    capture_t *c = arg;
    char chunk[65536];
    ssize_t n;
    while ((n = read(c->rd, chunk, sizeof chunk)) > 0)
        fr_buf_put(&c->got, chunk, (size_t)n);
    return NULL;
}

static void capture_begin(capture_t *c) {
    memset(c, 0, sizeof *c);
    int p[2];
    if (pipe(p) != 0)
        abort();
    c->rd = p[0];
    c->saved_fd = dup(STDERR_FILENO);
    dup2(p[1], STDERR_FILENO);
    close(p[1]);
}

static void capture_read(capture_t *c) {
    pthread_create(&c->reader, NULL, read_all, c);
}

/* Puts stderr back (which closes the pipe's last write end) and waits for the reader. */
static void capture_end(capture_t *c) {
    dup2(c->saved_fd, STDERR_FILENO);
    close(c->saved_fd);
    pthread_join(c->reader, NULL);
    close(c->rd);
}

/* Each line is {"ts":"…","level":"…",…} and valid UTF-8 with no raw control character; the
 * escaper has its own tests, so this checks the frame around it. Returns the bad lines. */
static size_t bad_lines(const fr_buf_t *text, size_t *lines) {
    size_t bad = 0;
    *lines = 0;
    for (size_t i = 0; i < text->len;) {
        const char *l = text->p + i, *nl = memchr(l, '\n', text->len - i);
        size_t n = nl ? (size_t)(nl - l) : text->len - i;
        int ok = nl && n > 2 && l[0] == '{' && l[n - 1] == '}' && strncmp(l, "{\"ts\":\"", 7) == 0 &&
                 fr_utf8_valid(l, n);
        for (size_t k = 0; ok && k < n; k++)
            ok = (unsigned char)l[k] >= 0x20;
        if (!ok && bad++ == 0)
            fr_t_print_bytes("first bad line", l, n);
        (*lines)++;
        i += n + 1;
    }
    return bad;
}

static void test_json_lines_with_hostile_messages(void) {
    capture_t c;
    capture_begin(&c);
    capture_read(&c);
    fr_log_set_json(1);
    fr_log_set_level(FR_LOG_DEBUG);
    fr_info("bad \xff bytes \xc0\x80 \xed\xa0\x80 \xe2\x82 ctl \x01\n\"q\" caf\xc3\xa9");
    char long_msg[3000];
    memset(long_msg, '\x01', sizeof long_msg - 1); /* escapes past the line's room */
    long_msg[sizeof long_msg - 1] = '\0';
    fr_warn("%s", long_msg);
    memset(long_msg, 'e', sizeof long_msg - 1);
    for (size_t i = 100; i + 2 < sizeof long_msg - 1; i += 3)
        memcpy(long_msg + i, "\xe2\x82\xac", 3); /* a cut at 2047 bytes splits a euro sign */
    fr_error("%s", long_msg);
    capture_end(&c);
    size_t lines;
    CHECK_EQ_UINT(bad_lines(&c.got, &lines), 0);
    CHECK_EQ_UINT(lines, 3);
    CHECK_CONTAINS(c.got.p, "\"msg\":\"bad \\ufffd bytes \\ufffd\\ufffd \\ufffd\\ufffd\\ufffd "
                            "\\ufffd\\ufffd ctl \\u0001\\n\\\"q\\\" caf\xc3\xa9\"}\n");
    fr_buf_free(&c.got);
}

/* The writer thread's buffer fills while nobody reads stderr: lines are dropped and counted,
 * and once there is room the count is logged, as a JSON line like every other. */
static void test_dropped_note_is_json(void) {
    capture_t c;
    capture_begin(&c);
    fr_log_set_json(1);
    fr_log_start();
    unsigned long before = fr_log_dropped();
    for (int i = 0; i < 1000000 && fr_log_dropped() < before + 10; i++)
        fr_info("filler line %d, long enough to fill the buffer in a few thousand lines", i);
    CHECK(fr_log_dropped() >= before + 10);
    capture_read(&c);
    /* Log until a line gets in again, then once more when the writer has had time to empty
     * the buffer: the note goes in before the first line that leaves room for it too. */
    for (int i = 0; i < 10000; i++) {
        unsigned long d = fr_log_dropped();
        fr_info("one more");
        if (fr_log_dropped() == d)
            break;
        usleep(1000);
    }
    usleep(100 * 1000);
    fr_info("after the drops");
    fr_log_stop();
    capture_end(&c);
    size_t lines;
    CHECK_EQ_UINT(bad_lines(&c.got, &lines), 0);
    CHECK(lines > 1000);
    /* Not CHECK_CONTAINS: it would print a megabyte of log. */
    const char *note = strstr(c.got.p, "\"level\":\"warn\",\"msg\":\"log: ");
    CHECK(note != NULL);
    CHECK(note && strstr(note, " lines were dropped (stderr was too slow)\"}\n") != NULL);
    CHECK(strstr(c.got.p, "\"msg\":\"after the drops\"}\n") != NULL);
    fr_buf_free(&c.got);
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_json_lines_with_hostile_messages);
    FR_RUN(test_dropped_note_is_json);
    return FR_TEST_END();
}
