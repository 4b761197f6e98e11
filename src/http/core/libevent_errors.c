/* libevent_errors.c — libevent 2.1 answers some requests before any callback of
 * ours sees them: a body over evhttp_set_max_body_size (413, for Content-Length
 * and chunked bodies alike), a request line or headers it cannot parse or that
 * exceed the header limit (400), a failed Expect (417). It does so by calling
 * evhttp_send_error, which writes an HTML page; 2.1 has no hook to change that
 * (2.2 adds evhttp_set_errorcb, and evhttp_set_newreqcb to see a request before
 * its body). libevent calls evhttp_send_error through its PLT, so the
 * definition below, in the executable, takes its place: the same contract
 * (answer with this status and close the connection) with our JSON error
 * document, X-Request-Id, and a lingering close so the client reads the answer
 * although we did not read its body. libevent_errors_attach checks at start that
 * the override is really the one libevent will call. */
#include "libevent_errors.h"

#include "exchange.h"
#include "id.h"
#include "linger.h"
#include "log.h"
#include "respond.h"

#include <dlfcn.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <stdio.h>

/* libevent calls us without a context argument: the process context is kept here. */
static struct http_child *errors_child;

bool libevent_errors_attach(struct http_child *c) {
    errors_child = c;
    void *global = dlsym(RTLD_DEFAULT, "evhttp_send_error");
    return global == (void *)evhttp_send_error;
}

static const char *code_of(int status) {
    switch (status) {
    case 413:
        return "too_large";
    case 417:
        return "expectation_failed";
    case 501:
        return "not_implemented";
    case 400:
        return "bad_request";
    default:
        return status >= 500 ? "internal" : "bad_request";
    }
}

void evhttp_send_error(struct evhttp_request *req, int error, const char *reason) {
    struct http_child *c = errors_child;
    char message[160];
    const char *code = code_of(error);
    if (error == 413)
        snprintf(message, sizeof(message), "request body is larger than %lld bytes (http.max_body)",
                 c ? (long long)c->cfg->http_max_body : -1LL);
    else if (error == 417)
        snprintf(message, sizeof(message), "only 'Expect: 100-continue' is supported");
    else if (error == 501)
        snprintf(message, sizeof(message), "method not implemented");
    else
        snprintf(message, sizeof(message),
                 "the request could not be parsed (malformed request line or headers, or "
                 "headers over http.max_header)");

    /* What libevent's own version does before sending (evhttp_send_page_). */
    if (!req->major || !req->minor) {
        req->major = 1;
        req->minor = 1;
    }
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    evhttp_clear_headers(out);
    char rid[EXCHANGE_RID_LEN + 1];
    if (c)
        exchange_request_id(c, rid);
    else
        id_random_hex(rid, EXCHANGE_RID_LEN / 2);
    evhttp_add_header(out, "Content-Type", "application/json");
    evhttp_add_header(out, "Connection", "close");
    evhttp_add_header(out, "X-Request-Id", rid);
    struct evbuffer *body = evhttp_request_get_output_buffer(req);
    evbuffer_drain(body, evbuffer_get_length(body));
    respond_error_body(body, code, message, NULL);
    if (c)
        linger_arm(c, req);
    log_debug("libevent refused a request: %d %s", error, code);
    evhttp_send_reply(req, error, reason, NULL);
}
