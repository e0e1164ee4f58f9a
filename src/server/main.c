/* freshet: command line. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "http/conn.h"
#include "broker/redis.h"
#include "server/worker.h"
#include "core/shared_dict.h"
#include "lua/vm.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: freshet APP.lua [--listen HOST:PORT] [--log-level LEVEL]\n"
            "       freshet --check APP.lua\n"
            "       freshet --version | --help\n"
            "\n"
            "Runs the streaming app described by APP.lua (see docs/LUA_API.md).\n"
            "  --check            load the app and every route script, print the routes, exit\n"
            "  --listen HOST:PORT listen here instead of the app's `listen`\n"
            "  --log-level LEVEL  debug, info (default), warn or error\n"
            "Options that take a value accept both --name VALUE and --name=VALUE.\n"
            "Signals: HUP reloads the scripts (and the TLS certificate and key) and reopens the\n"
            "access log, USR1 only reopens the access log, TERM and INT drain and stop.\n"
            "Exit codes: 0 after a drain, 1 when the app or a script fails to load, the TLS\n"
            "certificate or key cannot be loaded or the listener cannot bind, 2 for a bad\n"
            "command line or an unreadable app file.\n");
}

static const char *route_kind(fr_route_kind_t k) {
    return k == FR_ROUTE_STREAM    ? "stream"
           : k == FR_ROUTE_PUBLISH ? "publish"
           : k == FR_ROUTE_HTTP    ? "http"
                                   : "static";
}

static int check_app(const char *app) {
    fr_errors_t errs = {0};
    fr_vm_t *vm = fr_vm_new(app, NULL, &errs);
    if (!vm) {
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "%s\n", errs.items[i]);
        fr_errors_free(&errs);
        fr_shared_shutdown();
        return 1;
    }
    char err[512];
    if (strcmp(vm->config.broker, "memory") != 0 &&
        fr_redis_url_check(vm->config.broker, err, sizeof err) < 0) {
        /* The app file's own check passed: this is the server's parser, which has the last
         * word on the URL. */
        fprintf(stderr, "%s: %s\n", app, err);
        fr_vm_release(vm);
        fr_shared_shutdown();
        return 1;
    }
    if (vm->config.tls_cert) {
        /* What the server will load at start: a file that does not load fails the check. */
        fr_tls_ctx_t *ctx =
            fr_http_tls_new(vm->config.tls_cert, vm->config.tls_key, err, sizeof err);
        if (!ctx) {
            fprintf(stderr, "%s: %s\n", app, err);
            fr_vm_release(vm);
            fr_shared_shutdown();
            return 1;
        }
        fr_tls_ctx_free(ctx);
    }
    fprintf(stderr, "%s: ok, listen %s:%d%s, %zu routes\n", app, vm->config.host,
            vm->config.port, vm->config.tls_cert ? " (https)" : "", vm->nroutes);
    for (size_t i = 0; i < vm->nroutes; i++) {
        const fr_route_t *r = &vm->routes[i];
        printf("%-8s %-32s %s\n", route_kind(r->kind),
               r->kind == FR_ROUTE_STATIC ? (r->prefix[0] ? r->prefix : "/") : r->pattern.source,
               r->script);
    }
    fr_vm_release(vm);
    fr_shared_shutdown();
    return 0;
}

/* An option that takes a value, as "--name VALUE" or "--name=VALUE". Returns 1 and sets *val
 * when argv[*i] is that option (advancing *i past a separate value), 0 when it is not, and -1
 * (with a message) when the value is missing. */
static int option_value(int argc, char **argv, int *i, const char *name, const char *what,
                        const char **val) {
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0 || (a[n] != '\0' && a[n] != '='))
        return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
    } else if (*i + 1 < argc && argv[*i + 1][0] != '-') {
        *val = argv[++*i];
    } else {
        fprintf(stderr, "freshet: %s needs a value (%s)\n", name, what);
        return -1;
    }
    if (**val == '\0') {
        fprintf(stderr, "freshet: %s needs a value (%s), got an empty one\n", name, what);
        return -1;
    }
    return 1;
}

int main(int argc, char **argv) {
    const char *app = NULL, *listen = NULL, *level = NULL;
    int check = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int got;
        if (strcmp(a, "--version") == 0 || strcmp(a, "-v") == 0) {
            printf("freshet %s\n", FR_VERSION);
            return 0;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--check") == 0) {
            check = 1;
        } else if ((got = option_value(argc, argv, &i, "--listen", "HOST:PORT", &listen)) != 0 ||
                   (got = option_value(argc, argv, &i, "--log-level",
                                       "debug, info, warn or error", &level)) != 0) {
            if (got < 0)
                return 2;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "freshet: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (!app) {
            app = a;
        } else {
            fprintf(stderr, "freshet: one app file only (got '%s' and '%s')\n", app, a);
            return 2;
        }
    }
    if (level) {
        fr_log_level_t lv;
        if (fr_log_parse_level(level, &lv) < 0) {
            fprintf(stderr, "freshet: --log-level wants debug, info, warn or error, got '%s'\n",
                    level);
            return 2;
        }
        fr_log_set_level(lv);
    }
    if (!app) {
        usage(stderr);
        return 2;
    }
    if (access(app, R_OK) != 0) {
        fprintf(stderr, "freshet: cannot read app file '%s': %s\n", app, strerror(errno));
        return 2;
    }
    if (check)
        return check_app(app);
    return fr_server_run(app, listen);
}
