#include "http/exchange.h"

#include <stdlib.h>

void fr_exchange_respond_error(fr_exchange_t *x, int status, const char *msg) {
    size_t len;
    char *body = fr_http_error_body(msg, &len);
    x->ops->respond(x, status, "application/json", NULL, body, len);
    free(body);
}
