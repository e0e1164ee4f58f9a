/* App settings: the listen address parser, and app files checked by lua/freshet/app.lua and
 * read into the VM's config through fr_vm_new. */
#include <ftw.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/config.h"
#include "fr_test.h"
#include "core/shared_dict.h"
#include "lua/vm.h"

/* ---- listen ---- */

static void test_listen_valid(void) {
    char host[256];
    int port = -1;
    CHECK_EQ_INT(fr_config_parse_listen("127.0.0.1:3000", host, sizeof host, &port), 0);
    CHECK_EQ_STR(host, "127.0.0.1");
    CHECK_EQ_INT(port, 3000);
    CHECK_EQ_INT(fr_config_parse_listen("[::1]:80", host, sizeof host, &port), 0);
    CHECK_EQ_STR(host, "::1");
    CHECK_EQ_INT(port, 80);
    CHECK_EQ_INT(fr_config_parse_listen("0.0.0.0:65535", host, sizeof host, &port), 0);
    CHECK_EQ_STR(host, "0.0.0.0");
    CHECK_EQ_INT(port, 65535);
    CHECK_EQ_INT(fr_config_parse_listen("localhost:0", host, sizeof host, &port), 0);
    CHECK_EQ_STR(host, "localhost");
    CHECK_EQ_INT(port, 0);
    CHECK_EQ_INT(fr_config_parse_listen("[fe80::1:2]:8080", host, sizeof host, &port), 0);
    CHECK_EQ_STR(host, "fe80::1:2");
    CHECK_EQ_INT(port, 8080);
}

static void check_listen_bad(const char *s, const char *file, int line) {
    char host[256] = "unchanged";
    int port = 4242;
    int rc = fr_config_parse_listen(s, host, sizeof host, &port);
    if (!fr_t_eq_int(rc, -1, "fr_config_parse_listen", "-1", file, line)) {
        printf("    input: \"%s\" gave host \"%s\" port %d\n", s, host, port);
        return;
    }
    /* A refused address leaves the previous setting in place. */
    fr_t_eq_str(host, "unchanged", "host", "\"unchanged\"", file, line);
    fr_t_eq_int(port, 4242, "port", "4242", file, line);
}

#define LISTEN_BAD(s) check_listen_bad((s), __FILE__, __LINE__)

static void test_listen_invalid(void) {
    LISTEN_BAD("127.0.0.1");        /* no port */
    LISTEN_BAD("127.0.0.1:");       /* empty port */
    LISTEN_BAD("127.0.0.1:70000");  /* out of range */
    LISTEN_BAD("127.0.0.1:65536");
    LISTEN_BAD("127.0.0.1:-1");
    LISTEN_BAD("127.0.0.1:80x");
    LISTEN_BAD("127.0.0.1:99999999999999999999");
    LISTEN_BAD(":80");              /* empty host */
    LISTEN_BAD("[]:80");
    LISTEN_BAD("[::1]");
    LISTEN_BAD("[::1]80");
    LISTEN_BAD("[::1:80");
    LISTEN_BAD("");
    /* The port is digits only, as app.lua's check for `listen` demands. */
    LISTEN_BAD("127.0.0.1: 80");
    LISTEN_BAD("127.0.0.1:+80");

    /* A host that does not fit the buffer is refused, not truncated. */
    char small[8];
    int port = 0;
    CHECK_EQ_INT(fr_config_parse_listen("longhostname:80", small, sizeof small, &port), -1);
    CHECK_EQ_INT(fr_config_parse_listen("1234567:80", small, sizeof small, &port), 0);
    CHECK_EQ_STR(small, "1234567");
}

static void test_config_helpers(void) {
    fr_config_t c;
    fr_config_defaults(&c);
    CHECK_EQ_STR(c.host, "127.0.0.1");
    CHECK_EQ_INT(c.port, 3000);
    CHECK(fr_config_tier(&c, "free") == NULL);
    CHECK_EQ_INT(fr_config_cors_allows(&c, "https://a.example"), 0);

    c.ntiers = 1;
    c.tiers = calloc(1, sizeof *c.tiers);
    c.tiers[0].name = strdup("free");
    c.tiers[0].rate = 2;
    c.ncors = 1;
    c.cors = calloc(1, sizeof *c.cors);
    c.cors[0] = strdup("https://a.example");
    c.broker = strdup("memory");
    c.tls_cert = strdup("/etc/freshet/cert.pem");
    c.tls_key = strdup("/etc/freshet/key.pem");

    fr_config_t copy;
    fr_config_copy(&copy, &c);
    fr_config_free(&c);
    /* The copy owns its strings: it outlives the original. */
    const fr_tier_t *t = fr_config_tier(&copy, "free");
    REQUIRE(t != NULL);
    CHECK_EQ_DBL(t->rate, 2);
    CHECK_EQ_INT(fr_config_cors_allows(&copy, "https://a.example"), 1);
    CHECK_EQ_INT(fr_config_cors_allows(&copy, "https://b.example"), 0);
    CHECK_EQ_STR(copy.broker, "memory");
    CHECK_EQ_STR(copy.tls_cert, "/etc/freshet/cert.pem");
    CHECK_EQ_STR(copy.tls_key, "/etc/freshet/key.pem");
    fr_config_free(&copy);

    fr_config_defaults(&c);
    c.ncors = 1;
    c.cors = calloc(1, sizeof *c.cors);
    c.cors[0] = strdup("*");
    CHECK_EQ_INT(fr_config_cors_allows(&c, "https://anything.example"), 1);
    fr_config_free(&c);
}

/* ---- app files ---- */

typedef struct {
    char dir[64];
    char app[128];
} appdir_t;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void write_file(const appdir_t *a, const char *rel, const char *text) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", a->dir, rel);
    /* Create the parent directories of rel. */
    for (char *p = path + strlen(a->dir) + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        mkdir(path, 0700);
        *p = '/';
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        printf("    cannot write %s\n", path);
        return;
    }
    fputs(text, f);
    fclose(f);
}

/* A fresh directory holding app.lua (text) and, when given, one route script. */
static int appdir_make(appdir_t *a, const char *app_text, const char *route_rel,
                       const char *route_text) {
    snprintf(a->dir, sizeof a->dir, "/tmp/frcfgXXXXXX");
    if (!mkdtemp(a->dir)) {
        printf("    mkdtemp failed\n");
        return -1;
    }
    snprintf(a->app, sizeof a->app, "%s/app.lua", a->dir);
    write_file(a, "app.lua", app_text);
    if (route_rel)
        write_file(a, route_rel, route_text);
    return 0;
}

static void appdir_remove(appdir_t *a) {
    nftw(a->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Builds the VM and expects it to fail with an error containing every given piece; prints the
 * whole error list when it does not. */
static void expect_errors(const appdir_t *a, const char *const *pieces, size_t npieces,
                          const char *file, int line) {
    fr_errors_t errs = {0};
    fr_vm_t *vm = fr_vm_new(a->app, NULL, &errs);
    fr_t_check(vm == NULL, "fr_vm_new refuses the app", file, line);
    fr_t_check(errs.n > 0, "at least one error", file, line);
    int found = 0;
    for (size_t i = 0; i < errs.n && !found; i++) {
        int all = 1;
        for (size_t k = 0; k < npieces; k++)
            all &= strstr(errs.items[i], pieces[k]) != NULL;
        found = all;
    }
    if (!fr_t_check(found, "one error holds every expected piece", file, line)) {
        for (size_t k = 0; k < npieces; k++)
            printf("    want: %s\n", pieces[k]);
        for (size_t i = 0; i < errs.n; i++)
            printf("    got:  %s\n", errs.items[i]);
    }
    fr_vm_release(vm);
    fr_errors_free(&errs);
}

#define EXPECT_ERRORS(a, ...)                                                              \
    do {                                                                                   \
        const char *const pieces_[] = {__VA_ARGS__};                                       \
        expect_errors((a), pieces_, sizeof pieces_ / sizeof pieces_[0], __FILE__, __LINE__); \
    } while (0)

static const char ROUTE_OK[] =
    "local route = {}\n"
    "function route.topics(req, who) return { \"t\" } end\n"
    "return route\n";

static void test_valid_app(void) {
    appdir_t a;
    REQUIRE(appdir_make(&a,
                        "local freshet = require \"freshet\"\n"
                        "local app = freshet.app {\n"
                        "  listen = \"0.0.0.0:8088\",\n"
                        "  heartbeat = 2.5,\n"
                        "  retry = 1500,\n"
                        "  replay = { events = 50, seconds = 1.5 },\n"
                        "  limits = { body = 4096, headers = 2048 },\n"
                        "  tiers = { free = { rate = 5, burst = 10, queue = 16 },\n"
                        "            pro = { rate = 100, burst = 200 } },\n"
                        "  cors = { \"https://a.example\" },\n"
                        "}\n"
                        "app:stream(\"/rooms/:room/events\", \"routes/room.lua\")\n"
                        "return app\n",
                        "routes/room.lua", ROUTE_OK) == 0);
    fr_errors_t errs = {0};
    fr_vm_t *vm = fr_vm_new(a.app, NULL, &errs);
    if (!CHECK(vm != NULL)) {
        for (size_t i = 0; i < errs.n; i++)
            printf("    error: %s\n", errs.items[i]);
    }
    CHECK_EQ_UINT(errs.n, 0);
    if (vm) {
        const fr_config_t *c = &vm->config;
        CHECK_EQ_STR(c->host, "0.0.0.0");
        CHECK_EQ_INT(c->port, 8088);
        CHECK_EQ_UINT(c->heartbeat_ms, 2500);
        CHECK_EQ_UINT(c->retry_ms, 1500);
        CHECK_EQ_UINT(c->replay_events, 50);
        CHECK_EQ_UINT(c->replay_ms, 1500);
        CHECK_EQ_UINT(c->max_body, 4096);
        CHECK_EQ_UINT(c->max_headers, 2048);
        CHECK_EQ_STR(c->broker, "memory");
        CHECK_EQ_UINT(c->ntiers, 2);
        const fr_tier_t *free_tier = fr_config_tier(c, "free");
        const fr_tier_t *pro = fr_config_tier(c, "pro");
        if (CHECK(free_tier != NULL)) {
            CHECK_EQ_DBL(free_tier->rate, 5);
            CHECK_EQ_DBL(free_tier->burst, 10);
            CHECK_EQ_UINT(free_tier->queue, 16);
        }
        if (CHECK(pro != NULL)) {
            CHECK_EQ_DBL(pro->rate, 100);
            CHECK_EQ_DBL(pro->burst, 200);
            CHECK_EQ_UINT(pro->queue, c->default_tier.queue); /* no queue: the default */
        }
        CHECK_EQ_INT(fr_config_cors_allows(c, "https://a.example"), 1);
        CHECK_EQ_INT(fr_config_cors_allows(c, "https://b.example"), 0);

        REQUIRE(vm->nroutes == 1);
        const fr_route_t *r = &vm->routes[0];
        CHECK_EQ_INT(r->kind, FR_ROUTE_STREAM);
        CHECK_EQ_STR(r->pattern.source, "/rooms/:room/events");
        CHECK_EQ_STR(r->script, "routes/room.lua");
        CHECK(r->hooks[FR_HOOK_TOPICS] != LUA_NOREF);
        CHECK(r->hooks[FR_HOOK_FILTER] == LUA_NOREF);
        CHECK(r->hooks[FR_HOOK_AUTH] == LUA_NOREF);
        CHECK_EQ_INT(r->on_gap_reset, 0);

        /* The topics hook runs and returns {"t"}. */
        CHECK_EQ_INT(fr_vm_push_hook(vm, r, FR_HOOK_TOPICS), 1);
        lua_newtable(vm->L);
        lua_newtable(vm->L);
        if (CHECK_EQ_INT(fr_vm_call(vm, r, "topics", 2, 1), 0)) {
            CHECK(lua_istable(vm->L, -1));
            lua_rawgeti(vm->L, -1, 1);
            CHECK_EQ_STR(lua_tostring(vm->L, -1), "t");
            lua_settop(vm->L, 0);
        }
    }
    fr_vm_release(vm);
    fr_errors_free(&errs);
    appdir_remove(&a);
}

static void test_defaults(void) {
    appdir_t a;
    REQUIRE(appdir_make(&a,
                        "local freshet = require \"freshet\"\n"
                        "local app = freshet.app {}\n"
                        "app:stream(\"/s\", \"r.lua\")\n"
                        "return app\n",
                        "r.lua", ROUTE_OK) == 0);
    fr_errors_t errs = {0};
    fr_vm_t *vm = fr_vm_new(a.app, NULL, &errs);
    CHECK(vm != NULL);
    if (vm) {
        fr_config_t d;
        fr_config_defaults(&d);
        CHECK_EQ_UINT(vm->config.heartbeat_ms, d.heartbeat_ms);
        CHECK_EQ_UINT(vm->config.retry_ms, d.retry_ms);
        CHECK_EQ_UINT(vm->config.replay_events, d.replay_events);
        CHECK_EQ_UINT(vm->config.replay_ms, d.replay_ms);
        CHECK_EQ_UINT(vm->config.max_body, d.max_body);
        CHECK_EQ_STR(vm->config.host, d.host);
        CHECK_EQ_INT(vm->config.port, d.port);
        CHECK_EQ_UINT(vm->config.ntiers, 0);
        fr_config_free(&d);
    }
    fr_vm_release(vm);
    fr_errors_free(&errs);
    appdir_remove(&a);
}

static void test_fractional_tier_rate(void) {
    /* app.lua accepts any positive rate and burst ("a number > 0"): half a token per second is a
     * legitimate setting and must not be read as 0. */
    appdir_t a;
    REQUIRE(appdir_make(&a,
                        "local freshet = require \"freshet\"\n"
                        "local app = freshet.app { tiers = { slow = { rate = 0.5, burst = 1.5 } } }\n"
                        "app:stream(\"/s\", \"r.lua\")\n"
                        "return app\n",
                        "r.lua", ROUTE_OK) == 0);
    fr_errors_t errs = {0};
    fr_vm_t *vm = fr_vm_new(a.app, NULL, &errs);
    CHECK(vm != NULL);
    if (vm) {
        const fr_tier_t *t = fr_config_tier(&vm->config, "slow");
        if (CHECK(t != NULL)) {
            CHECK_EQ_DBL(t->rate, 0.5);
            CHECK_EQ_DBL(t->burst, 1.5);
        }
    }
    fr_vm_release(vm);
    fr_errors_free(&errs);
    appdir_remove(&a);
}

static void test_unknown_key(void) {
    appdir_t a;
    REQUIRE(appdir_make(&a,
                        "local freshet = require \"freshet\"\n"
                        "\n"
                        "local app = freshet.app { heartbaet = 15 }\n"
                        "app:stream(\"/s\", \"r.lua\")\n"
                        "return app\n",
                        "r.lua", ROUTE_OK) == 0);
    char where[160];
    snprintf(where, sizeof where, "%s:3:", a.app);
    EXPECT_ERRORS(&a, "unknown key 'heartbaet'", where);
    appdir_remove(&a);
}

static void test_wrong_type(void) {
    appdir_t a;
    REQUIRE(appdir_make(&a,
                        "local freshet = require \"freshet\"\n"
                        "local app = freshet.app {\n"
                        "  heartbeat = \"x\",\n"
                        "}\n"
                        "app:stream(\"/s\", \"r.lua\")\n"
                        "return app\n",
                        "r.lua", ROUTE_OK) == 0);
    char where[160];
    snprintf(where, sizeof where, "%s:", a.app);
    EXPECT_ERRORS(&a, "heartbeat must be a number", "got string", where);
    appdir_remove(&a);
}

static void test_nested_unknown_key(void) {
    appdir_t a;
    REQUIRE(appdir_make(&a,
                        "local freshet = require \"freshet\"\n"
                        "local app = freshet.app { replay = { evnts = 1 } }\n"
                        "app:stream(\"/s\", \"r.lua\")\n"
                        "return app\n",
                        "r.lua", ROUTE_OK) == 0);
    char where[160];
    snprintf(where, sizeof where, "%s:2:", a.app);
    EXPECT_ERRORS(&a, "replay", "unknown key 'evnts'", where);
    appdir_remove(&a);
}

/* tls = {cert, key}: paths relative to the app file's directory (absolute ones kept); whether
 * they load is not the VM's to check (the server and --check do). */
static void test_tls_settings(void) {
    appdir_t a;
    REQUIRE(appdir_make(&a,
                        "local freshet = require \"freshet\"\n"
                        "local app = freshet.app {\n"
                        "  tls = { cert = \"certs/cert.pem\", key = \"/etc/k.pem\" },\n"
                        "}\n"
                        "app:stream(\"/s\", \"r.lua\")\n"
                        "return app\n",
                        "r.lua", ROUTE_OK) == 0);
    fr_errors_t errs = {0};
    fr_vm_t *vm = fr_vm_new(a.app, NULL, &errs);
    CHECK(vm != NULL);
    if (vm) {
        char want[200];
        snprintf(want, sizeof want, "%s/certs/cert.pem", a.dir);
        CHECK_EQ_STR(vm->config.tls_cert, want);
        CHECK_EQ_STR(vm->config.tls_key, "/etc/k.pem");
    }
    fr_vm_release(vm);
    fr_errors_free(&errs);
    appdir_remove(&a);

    /* Without the key: cleartext. */
    REQUIRE(appdir_make(&a,
                        "local freshet = require \"freshet\"\n"
                        "local app = freshet.app {}\n"
                        "app:stream(\"/s\", \"r.lua\")\n"
                        "return app\n",
                        "r.lua", ROUTE_OK) == 0);
    vm = fr_vm_new(a.app, NULL, &errs);
    CHECK(vm != NULL);
    if (vm)
        CHECK(vm->config.tls_cert == NULL && vm->config.tls_key == NULL);
    fr_vm_release(vm);
    fr_errors_free(&errs);
    appdir_remove(&a);

    /* Mistakes name the app file's line. */
    static const struct {
        const char *value;
        const char *error;
    } bad[] = {
        {"{ cert = \"c.pem\", key = \"k.pem\", ciphers = \"ALL\" }", "tls: unknown key 'ciphers'"},
        {"{ cert = \"c.pem\" }", "tls.key is missing"},
        {"{ key = \"k.pem\" }", "tls.cert is missing"},
        {"{ cert = 1, key = \"k.pem\" }", "tls.cert must be a string"},
        {"{ cert = \"\", key = \"k.pem\" }", "tls.cert must be a file path"},
        {"\"cert.pem\"", "tls must be a table"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char app[400];
        snprintf(app, sizeof app,
                 "local freshet = require \"freshet\"\n"
                 "\n"
                 "local app = freshet.app { tls = %s }\n"
                 "app:stream(\"/s\", \"r.lua\")\n"
                 "return app\n",
                 bad[i].value);
        REQUIRE(appdir_make(&a, app, "r.lua", ROUTE_OK) == 0);
        char where[160];
        snprintf(where, sizeof where, "%s:3:", a.app);
        EXPECT_ERRORS(&a, bad[i].error, where);
        appdir_remove(&a);
    }
}

static void test_route_syntax_error(void) {
    appdir_t a;
    REQUIRE(appdir_make(&a,
                        "local freshet = require \"freshet\"\n"
                        "local app = freshet.app {}\n"
                        "app:stream(\"/s\", \"routes/bad.lua\")\n"
                        "return app\n",
                        "routes/bad.lua",
                        "local route = {}\n"
                        "function route.topics(req who) return {} end\n"
                        "return route\n") == 0);
    char where[160];
    snprintf(where, sizeof where, "%s/routes/bad.lua:2:", a.dir);
    EXPECT_ERRORS(&a, where);
    appdir_remove(&a);
}

static void test_route_runtime_error(void) {
    appdir_t a;
    REQUIRE(appdir_make(&a,
                        "local freshet = require \"freshet\"\n"
                        "local app = freshet.app {}\n"
                        "app:stream(\"/s\", \"boom.lua\")\n"
                        "return app\n",
                        "boom.lua",
                        "local route = {}\n"
                        "\n"
                        "error(\"boom at load\")\n"
                        "return route\n") == 0);
    char where[160];
    snprintf(where, sizeof where, "%s/boom.lua:3:", a.dir);
    EXPECT_ERRORS(&a, where, "boom at load");
    appdir_remove(&a);
}

static void test_stream_route_needs_topics(void) {
    appdir_t a;
    REQUIRE(appdir_make(&a,
                        "local freshet = require \"freshet\"\n"
                        "local app = freshet.app {}\n"
                        "app:stream(\"/s\", \"r.lua\")\n"
                        "return app\n",
                        "r.lua",
                        "local route = {}\n"
                        "function route.auth(req) return {} end\n"
                        "return route\n") == 0);
    char where[160];
    snprintf(where, sizeof where, "%s/r.lua", a.dir);
    EXPECT_ERRORS(&a, "topics", where);
    appdir_remove(&a);
}

static void test_unknown_hook(void) {
    appdir_t a;
    REQUIRE(appdir_make(&a,
                        "local freshet = require \"freshet\"\n"
                        "local app = freshet.app {}\n"
                        "app:stream(\"/s\", \"r.lua\")\n"
                        "return app\n",
                        "r.lua",
                        "local route = {}\n"
                        "function route.topics(req, who) return { \"t\" } end\n"
                        "function route.filtr(ev) return true end\n"
                        "return route\n") == 0);
    EXPECT_ERRORS(&a, "'filtr'");
    appdir_remove(&a);
}

static void test_more_app_errors(void) {
    appdir_t a;
    /* A bad pattern names the app file line that added the route. */
    REQUIRE(appdir_make(&a,
                        "local freshet = require \"freshet\"\n"
                        "local app = freshet.app {}\n"
                        "app:stream(\"/:a/:a\", \"r.lua\")\n"
                        "return app\n",
                        "r.lua", ROUTE_OK) == 0);
    char where[160];
    snprintf(where, sizeof where, "%s:3:", a.app);
    EXPECT_ERRORS(&a, "twice", where);
    appdir_remove(&a);

    /* A missing route script. */
    REQUIRE(appdir_make(&a,
                        "local freshet = require \"freshet\"\n"
                        "local app = freshet.app {}\n"
                        "app:stream(\"/s\", \"nope.lua\")\n"
                        "return app\n",
                        NULL, NULL) == 0);
    EXPECT_ERRORS(&a, "nope.lua", "cannot open");
    appdir_remove(&a);

    /* An app file that does not return the app: a table, then values that are not tables at
     * all. Those run in a child process so that a crash is reported as a failed check instead
     * of ending the whole test program. */
    REQUIRE(appdir_make(&a, "return {}\n", NULL, NULL) == 0);
    EXPECT_ERRORS(&a, "must return the app");
    appdir_remove(&a);
    static const char *const not_tables[] = {"return 42\n", "return nil\n", "return true\n",
                                             "return \"app\"\n"};
    for (size_t i = 0; i < sizeof not_tables / sizeof not_tables[0]; i++) {
        REQUIRE(appdir_make(&a, not_tables[i], NULL, NULL) == 0);
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            int before = fr_t_failed_checks;
            EXPECT_ERRORS(&a, "must return the app");
            fflush(stdout);
            _exit(fr_t_failed_checks == before ? 0 : 1);
        }
        int status = 0;
        CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
        if (!CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
            printf("    app file: %s", not_tables[i]);
            if (WIFSIGNALED(status))
                printf("    the child died of signal %d\n", WTERMSIG(status));
            else if (WIFEXITED(status))
                printf("    the child exited with status %d\n", WEXITSTATUS(status));
        }
        appdir_remove(&a);
    }

    /* An out-of-range integer setting. */
    REQUIRE(appdir_make(&a,
                        "local freshet = require \"freshet\"\n"
                        "return freshet.app { retry = -1 }\n",
                        NULL, NULL) == 0);
    EXPECT_ERRORS(&a, "retry must be an integer >= 0");
    appdir_remove(&a);

    /* Every problem in the route scripts is reported, not only the first. */
    REQUIRE(appdir_make(&a,
                        "local freshet = require \"freshet\"\n"
                        "local app = freshet.app {}\n"
                        "app:stream(\"/a\", \"r.lua\")\n"
                        "app:stream(\"/b\", \"missing.lua\")\n"
                        "return app\n",
                        "r.lua",
                        "return { topics = function() return {} end, on_gap = \"sometimes\" }\n") == 0);
    fr_errors_t errs = {0};
    CHECK(fr_vm_new(a.app, NULL, &errs) == NULL);
    CHECK_EQ_UINT(errs.n, 2);
    fr_errors_free(&errs);
    appdir_remove(&a);
}

int main(int argc, char **argv) {
    FR_TEST_BEGIN(argc, argv);
    FR_RUN(test_listen_valid);
    FR_RUN(test_listen_invalid);
    FR_RUN(test_config_helpers);
    FR_RUN(test_valid_app);
    FR_RUN(test_defaults);
    FR_RUN(test_fractional_tier_rate);
    FR_RUN(test_unknown_key);
    FR_RUN(test_wrong_type);
    FR_RUN(test_nested_unknown_key);
    FR_RUN(test_tls_settings);
    FR_RUN(test_route_syntax_error);
    FR_RUN(test_route_runtime_error);
    FR_RUN(test_stream_route_needs_topics);
    FR_RUN(test_unknown_hook);
    FR_RUN(test_more_app_errors);
    fr_shared_shutdown();
    return FR_TEST_END();
}
