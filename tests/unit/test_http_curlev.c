/* test_http_curlev.c — libcurl on a real event loop (curlev.h) against two
 * servers of the test's own on 127.0.0.1: one that answers every request
 * (keep-alive, the body names the path) and one that reads requests and
 * never answers. Each done comes once with the right body and code; cancels,
 * timeouts, refusals, re-entry from done and frees with transfers in flight
 * leave nothing behind (the SANITIZE build checks leaks and use-after-free).
 * Every loop run is bounded by a deadline that fails the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "curlev.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEADLINE_S 20 /* a loop run still going then has failed */
#define NPARALLEL  32

/* --- the test's HTTP server ------------------------------------------------ */

struct server;

struct sconn {
    struct sconn *prev, *next;
    struct server *srv;
    struct bufferevent *bev;
};

struct server {
    struct evconnlistener *lis;
    int port;
    bool mute;    /* reads requests, never answers */
    int requests; /* requests read (up to their blank line) */
    int accepted; /* connections accepted */
    struct sconn *conns;
    /* called after each request is read */
    void (*on_request)(struct server *srv, void *arg);
    void *hook_arg;
};

static void sconn_free(struct sconn *c) {
    struct server *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    bufferevent_free(c->bev);
    free(c);
}

/* Each request whole in the buffer (up to its blank line; GETs have no body)
 * gets "body of <path>", on the same connection. */
static void sconn_read(struct bufferevent *bev, void *arg) {
    struct sconn *c = arg;
    struct server *srv = c->srv;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
        if (end.pos < 0)
            return;
        char head[512];
        size_t n = (size_t)end.pos < sizeof head - 1 ? (size_t)end.pos : sizeof head - 1;
        evbuffer_copyout(in, head, n);
        head[n] = '\0';
        evbuffer_drain(in, (size_t)end.pos + 4);
        srv->requests++;
        if (!srv->mute) {
            char path[256] = "?";
            sscanf(head, "GET %255s ", path);
            evbuffer_add_printf(bufferevent_get_output(bev),
                                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                "Content-Length: %zu\r\n\r\nbody of %s",
                                strlen("body of ") + strlen(path), path);
        }
        if (srv->on_request)
            srv->on_request(srv, srv->hook_arg); /* may not touch c */
    }
}

static void sconn_event(struct bufferevent *bev, short what, void *arg) {
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        sconn_free(arg);
}

static void server_accept(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
                          int salen, void *arg) {
    (void)sa;
    (void)salen;
    struct server *srv = arg;
    struct sconn *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->srv = srv;
    c->bev = bufferevent_socket_new(evconnlistener_get_base(lis), fd, BEV_OPT_CLOSE_ON_FREE);
    assert_non_null(c->bev);
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->accepted++;
    bufferevent_setcb(c->bev, sconn_read, NULL, sconn_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void server_start(struct server *srv, struct event_base *base, bool mute) {
    memset(srv, 0, sizeof *srv);
    srv->mute = mute;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    srv->lis =
        evconnlistener_new_bind(base, server_accept, srv, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                64, (struct sockaddr *)&sin, sizeof sin);
    assert_non_null(srv->lis);
    socklen_t len = sizeof sin;
    assert_int_equal(getsockname(evconnlistener_get_fd(srv->lis), (struct sockaddr *)&sin, &len),
                     0);
    srv->port = ntohs(sin.sin_port);
}

static void server_stop(struct server *srv) {
    while (srv->conns)
        sconn_free(srv->conns);
    evconnlistener_free(srv->lis);
}

/* A port on 127.0.0.1 that nobody listens on: bound, then closed. */
static int closed_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    socklen_t len = sizeof sin;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    close(fd);
    return ntohs(sin.sin_port);
}

/* --- the fixture: a loop, both servers, a curlev --------------------------- */

struct fx {
    struct event_base *base;
    struct server srv;  /* answers */
    struct server mute; /* never answers */
    struct curlev *m;   /* NULL once a test freed it */
    struct event *deadline;
    bool deadline_hit;
    int pending; /* dones still expected: the loop stops at 0 */
};

static void on_deadline(evutil_socket_t fd, short events, void *arg) {
    (void)fd;
    (void)events;
    struct fx *fx = arg;
    fx->deadline_hit = true;
    event_base_loopbreak(fx->base);
}

static int setup(void **state) {
    struct fx *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    fx->base = event_base_new();
    assert_non_null(fx->base);
    server_start(&fx->srv, fx->base, false);
    server_start(&fx->mute, fx->base, true);
    fx->m = curlev_new(fx->base);
    assert_non_null(fx->m);
    fx->deadline = evtimer_new(fx->base, on_deadline, fx);
    assert_non_null(fx->deadline);
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    struct fx *fx = *state;
    curlev_free(fx->m);
    server_stop(&fx->srv);
    server_stop(&fx->mute);
    event_free(fx->deadline);
    event_base_free(fx->base);
    free(fx);
    return 0;
}

/* Runs the loop until something breaks it (the last done, a hook); fails the
 * test when the deadline does. */
static void run(struct fx *fx) {
    struct timeval tv = {DEADLINE_S, 0};
    fx->deadline_hit = false;
    assert_int_equal(evtimer_add(fx->deadline, &tv), 0);
    event_base_dispatch(fx->base);
    evtimer_del(fx->deadline);
    assert_false(fx->deadline_hit);
}

/* --- one GET and what came of it ------------------------------------------- */

struct get {
    struct fx *fx;
    CURL *easy;
    char body[256];
    size_t len;
    bool overflow;
    int dones;
    CURLcode result;
    /* called from inside done, after the bookkeeping */
    void (*then)(struct get *g);
    void *then_arg;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg) {
    struct get *g = arg;
    size_t len = size * n;
    if (g->len + len >= sizeof g->body) {
        g->overflow = true;
        return len;
    }
    memcpy(g->body + g->len, p, len);
    g->len += len;
    g->body[g->len] = '\0';
    return len;
}

static void get_done(CURL *easy, CURLcode result, void *arg) {
    struct get *g = arg;
    assert_ptr_equal(easy, g->easy);
    g->dones++;
    g->result = result;
    struct fx *fx = g->fx;
    if (g->then)
        g->then(g);
    if (--fx->pending == 0)
        event_base_loopbreak(fx->base);
}

/* Points g (its handle made on first use) at path on port, body reset. */
static void get_prepare(struct get *g, struct fx *fx, int port, const char *path, long timeout_ms) {
    if (!g->easy) {
        g->easy = curl_easy_init();
        assert_non_null(g->easy);
    }
    g->fx = fx;
    g->len = 0;
    g->body[0] = '\0';
    char url[300];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(g->easy, CURLOPT_URL, url);
    curl_easy_setopt(g->easy, CURLOPT_PROXY, ""); /* never an http_proxy of the environment */
    curl_easy_setopt(g->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(g->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(g->easy, CURLOPT_WRITEDATA, g);
    curl_easy_setopt(g->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
}

static void get_start(struct get *g, struct fx *fx, int port, const char *path, long timeout_ms) {
    get_prepare(g, fx, port, path, timeout_ms);
    assert_int_equal(curlev_add(fx->m, g->easy, get_done, g), 0);
    fx->pending++;
}

static void get_cleanup(struct get *g) {
    curl_easy_cleanup(g->easy);
    g->easy = NULL;
}

static long get_status(const struct get *g) {
    long code = 0;
    curl_easy_getinfo(g->easy, CURLINFO_RESPONSE_CODE, &code);
    return code;
}

/* --- the tests ------------------------------------------------------------- */

static void test_one_get(void **state) {
    struct fx *fx = *state;
    struct get g = {0};
    get_start(&g, fx, fx->srv.port, "/one", 10000);
    assert_int_equal(curlev_running(fx->m), 1);
    assert_int_equal(g.dones, 0); /* never from inside curlev_add */
    run(fx);
    assert_int_equal(g.dones, 1);
    assert_int_equal(g.result, CURLE_OK);
    assert_int_equal(get_status(&g), 200);
    assert_string_equal(g.body, "body of /one");
    assert_int_equal(curlev_running(fx->m), 0);
    get_cleanup(&g);
}

/* The usual done: the handle's last use. */
static void cleanup_then(struct get *g) {
    get_cleanup(g);
}

static void test_cleanup_in_done(void **state) {
    struct fx *fx = *state;
    struct get g = {.then = cleanup_then};
    get_start(&g, fx, fx->srv.port, "/last-use", 10000);
    run(fx);
    assert_int_equal(g.dones, 1);
    assert_int_equal(g.result, CURLE_OK);
    assert_string_equal(g.body, "body of /last-use");
    assert_null(g.easy);
    assert_int_equal(curlev_running(fx->m), 0);
}

static void test_parallel(void **state) {
    struct fx *fx = *state;
    struct get g[NPARALLEL] = {0};
    char path[32];
    for (int i = 0; i < NPARALLEL; i++) {
        snprintf(path, sizeof path, "/n/%d", i);
        get_start(&g[i], fx, fx->srv.port, path, 10000);
    }
    assert_int_equal(curlev_running(fx->m), NPARALLEL);
    run(fx);
    assert_int_equal(curlev_running(fx->m), 0);
    assert_int_equal(fx->srv.requests, NPARALLEL);
    for (int i = 0; i < NPARALLEL; i++) {
        char want[64];
        snprintf(want, sizeof want, "body of /n/%d", i);
        assert_int_equal(g[i].dones, 1);
        assert_int_equal(g[i].result, CURLE_OK);
        assert_false(g[i].overflow);
        assert_string_equal(g[i].body, want);
        get_cleanup(&g[i]);
    }
}

/* The mute server read the request of the transfer to cancel: it is in
 * flight, its socket watched. Cancel it, then start one that answers. */
struct cancel_case {
    struct fx *fx;
    struct get *victim, *after;
};

static void cancel_on_request(struct server *srv, void *arg) {
    struct cancel_case *cc = arg;
    srv->on_request = NULL;
    curlev_cancel(cc->fx->m, cc->victim->easy);
    cc->fx->pending--; /* its done is not expected any more */
    assert_int_equal(curlev_running(cc->fx->m), 0);
    get_start(cc->after, cc->fx, cc->fx->srv.port, "/after", 10000);
}

static void test_cancel(void **state) {
    struct fx *fx = *state;
    struct get early = {0}, victim = {0}, after = {0};

    /* Canceled before the loop ever ran: nothing started. */
    get_start(&early, fx, fx->srv.port, "/early", 10000);
    curlev_cancel(fx->m, early.easy);
    fx->pending--;
    assert_int_equal(curlev_running(fx->m), 0);
    curlev_cancel(fx->m, early.easy); /* no longer in flight: a no-op */
    CURL *stranger = curl_easy_init();
    curlev_cancel(fx->m, stranger); /* never added: a no-op */
    curlev_cancel(fx->m, NULL);
    curl_easy_cleanup(stranger);
    get_cleanup(&early); /* the caller's again: cleanup right away is fine */

    /* Canceled in flight, connected and waiting for its answer. */
    struct cancel_case cc = {fx, &victim, &after};
    fx->mute.on_request = cancel_on_request;
    fx->mute.hook_arg = &cc;
    get_start(&victim, fx, fx->mute.port, "/victim", 10000);
    run(fx);
    assert_int_equal(fx->mute.requests, 1);
    assert_int_equal(victim.dones, 0);
    assert_int_equal(after.dones, 1);
    assert_int_equal(after.result, CURLE_OK);
    assert_string_equal(after.body, "body of /after");
    assert_int_equal(curlev_running(fx->m), 0);
    get_cleanup(&victim);
    get_cleanup(&after);
}

static void test_timeout(void **state) {
    struct fx *fx = *state;
    struct get g = {0};
    get_start(&g, fx, fx->mute.port, "/silence", 200);
    run(fx);
    assert_int_equal(g.dones, 1);
    assert_int_equal(g.result, CURLE_OPERATION_TIMEDOUT);
    assert_int_equal(curlev_running(fx->m), 0);
    get_cleanup(&g);
}

/* Two transfers that fail in the socket_action that starts them (a scheme
 * curl does not know), so both messages are queued when the first done runs
 * and cancels the other: curl_multi_remove_handle drops its message, and its
 * done never comes. One done in all. */
static void cancel_partner_then(struct get *g) {
    struct get *partner = g->then_arg;
    partner->then = NULL;
    curlev_cancel(g->fx->m, partner->easy);
    g->fx->pending--;
}

static void test_cancel_from_done(void **state) {
    struct fx *fx = *state;
    struct get a = {0}, b = {0};
    a.then = cancel_partner_then;
    a.then_arg = &b;
    b.then = cancel_partner_then;
    b.then_arg = &a;
    get_prepare(&a, fx, fx->srv.port, "/a", 10000);
    get_prepare(&b, fx, fx->srv.port, "/b", 10000);
    curl_easy_setopt(a.easy, CURLOPT_URL, "nosuch://127.0.0.1/a");
    curl_easy_setopt(b.easy, CURLOPT_URL, "nosuch://127.0.0.1/b");
    assert_int_equal(curlev_add(fx->m, a.easy, get_done, &a), 0);
    assert_int_equal(curlev_add(fx->m, b.easy, get_done, &b), 0);
    fx->pending = 2;
    run(fx);
    assert_int_equal(a.dones + b.dones, 1);
    assert_int_equal((a.dones ? a : b).result, CURLE_UNSUPPORTED_PROTOCOL);
    assert_int_equal(curlev_running(fx->m), 0);
    get_cleanup(&a);
    get_cleanup(&b);
}

static void test_refused(void **state) {
    struct fx *fx = *state;
    struct get g = {0};
    get_start(&g, fx, closed_port(), "/nobody", 10000);
    run(fx);
    assert_int_equal(g.dones, 1);
    assert_int_equal(g.result, CURLE_COULDNT_CONNECT);
    assert_int_equal(curlev_running(fx->m), 0);
    get_cleanup(&g);
}

/* Each done re-adds the same handle with the next path, from inside done;
 * the fifth's done cancels a transfer in flight on the mute server. */
#define CHAIN 5
struct chain {
    int step;
    char bodies[CHAIN][256];
    struct get *other; /* on the mute server, canceled by the last done */
};

static void chain_then(struct get *g) {
    struct chain *ch = g->then_arg;
    assert_int_equal(g->result, CURLE_OK);
    snprintf(ch->bodies[ch->step], sizeof ch->bodies[0], "%s", g->body);
    if (++ch->step < CHAIN) {
        char path[32];
        snprintf(path, sizeof path, "/chain/%d", ch->step);
        get_start(g, g->fx, g->fx->srv.port, path, 10000); /* pending++ before done's -- */
        assert_int_equal(curlev_running(g->fx->m), 2);
        return;
    }
    curlev_cancel(g->fx->m, ch->other->easy);
    g->fx->pending--;
    assert_int_equal(curlev_running(g->fx->m), 0);
}

static void test_add_from_done(void **state) {
    struct fx *fx = *state;
    struct get g = {0}, other = {0};
    struct chain ch = {.step = 0, .other = &other};
    get_start(&other, fx, fx->mute.port, "/other", 10000);
    g.then = chain_then;
    g.then_arg = &ch;
    get_start(&g, fx, fx->srv.port, "/chain/0", 10000);
    run(fx);
    assert_int_equal(ch.step, CHAIN);
    assert_int_equal(g.dones, CHAIN); /* once per add */
    for (int i = 0; i < CHAIN; i++) {
        char want[64];
        snprintf(want, sizeof want, "body of /chain/%d", i);
        assert_string_equal(ch.bodies[i], want);
    }
    assert_int_equal(fx->srv.accepted, 1); /* the re-adds reused the connection */
    assert_int_equal(other.dones, 0);
    assert_int_equal(curlev_running(fx->m), 0);
    get_cleanup(&g);
    get_cleanup(&other);
}

/* The mute server has read every waiting request: stop the loop there. */
static void break_at_all(struct server *srv, void *arg) {
    struct fx *fx = arg;
    if (srv->requests == NPARALLEL / 2)
        event_base_loopbreak(fx->base);
}

static void test_free_in_flight(void **state) {
    struct fx *fx = *state;
    struct get waiting[NPARALLEL / 2] = {0}, unstarted[4] = {0};
    fx->mute.on_request = break_at_all;
    fx->mute.hook_arg = fx;
    for (int i = 0; i < NPARALLEL / 2; i++)
        get_start(&waiting[i], fx, fx->mute.port, "/wait", 10000);
    run(fx);
    assert_int_equal(fx->mute.requests, NPARALLEL / 2);
    /* And some that the loop has not started yet. */
    for (int i = 0; i < 4; i++)
        get_start(&unstarted[i], fx, fx->srv.port, "/later", 10000);
    assert_int_equal(curlev_running(fx->m), NPARALLEL / 2 + 4);
    curlev_free(fx->m);
    fx->m = NULL;
    for (int i = 0; i < NPARALLEL / 2; i++) {
        assert_int_equal(waiting[i].dones, 0);
        get_cleanup(&waiting[i]);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(unstarted[i].dones, 0);
        get_cleanup(&unstarted[i]);
    }
    assert_int_equal(curlev_running(NULL), 0);
    curlev_free(NULL);
}

/* A done that frees the curlev while another transfer is in flight. */
static void free_then(struct get *g) {
    curlev_free(g->fx->m);
    g->fx->m = NULL;
    g->fx->pending = 1; /* the mute one's done will not come: stop at this one */
}

static void test_free_from_done(void **state) {
    struct fx *fx = *state;
    struct get g = {0}, other = {0};
    get_start(&other, fx, fx->mute.port, "/other", 10000);
    g.then = free_then;
    get_start(&g, fx, fx->srv.port, "/last", 10000);
    run(fx);
    assert_null(fx->m);
    assert_int_equal(g.dones, 1);
    assert_int_equal(g.result, CURLE_OK);
    assert_string_equal(g.body, "body of /last");
    assert_int_equal(other.dones, 0);
    get_cleanup(&g);
    get_cleanup(&other);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cleanup_in_done, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parallel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_from_done, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_from_done, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_from_done, setup, teardown),
    };
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) /* the process's part (curlev.h) */
        return 1;
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
