/* test_http_conn.c — the connection layer (src/http/core/conn.c) over real
 * sockets (socketpairs it adopts, with the client address a test chooses),
 * driven by its own event loop; deadlines by conn_server_sweep with a clock
 * the test moves. The layer above is this file: it records what it is told
 * and answers as each test asks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "units.h"

#define TIMEOUT_MS 2000

/* What the layer told us, and how to answer. */
static struct {
    int requests, done, gone, flushed;
    struct conn *held;  /* a request not answered yet (hold) */
    bool hold;          /* keep requests unanswered */
    bool close_on_peer; /* peer_closed's answer */
    size_t big;         /* answer with a body this large (0: "ok\n") */
    char body[8192];    /* the last request's body */
    size_t body_len;
} seen;

static struct event_base *base;
static struct conn_server *server;
static struct evbuffer *answer;

static void answer_now(struct conn *k) {
    if (seen.big) {
        char *junk = calloc(1, seen.big);
        evbuffer_add(answer, junk, seen.big);
        free(junk);
    } else {
        evbuffer_add(answer, "ok\n", 3);
    }
    conn_header(k, "Content-Type", "text/plain");
    conn_send(k, 200, answer, conn_request(k)->method == HTTP_HEAD ? CONN_HEAD_ONLY : 0);
}

static void on_request(struct conn *k, void *arg) {
    (void)arg;
    const struct parse_request *r = conn_request(k);
    seen.requests++;
    seen.body_len = r->body_len < sizeof(seen.body) ? r->body_len : 0;
    if (seen.body_len)
        memcpy(seen.body, r->body, seen.body_len);
    conn_set_user(k, &seen);
    if (seen.hold) {
        seen.held = k;
        return;
    }
    answer_now(k);
}

static void on_done(struct conn *k, void *user) {
    (void)k;
    assert_ptr_equal(user, &seen);
    seen.done++;
}

static void on_gone(struct conn *k, void *user) {
    assert_ptr_equal(user, &seen);
    if (k == seen.held)
        seen.held = NULL;
    seen.gone++;
}

static void on_flushed(struct conn *k, void *user) {
    (void)k;
    (void)user;
    seen.flushed++;
}

static bool on_peer_closed(struct conn *k, void *user) {
    (void)k;
    (void)user;
    return seen.close_on_peer;
}

static struct cidr_list exempt;

static void start(size_t max_connections, size_t max_per_client) {
    memset(&seen, 0, sizeof(seen));
    base = event_base_new();
    answer = evbuffer_new();
    struct conn_limits lim = {.max_header = 1024,
                              .max_body = 200000,
                              .timeout_ms = TIMEOUT_MS,
                              .max_connections = max_connections,
                              .max_per_client = max_per_client,
                              .exempt = &exempt};
    struct conn_callbacks cb = {.request = on_request,
                                .done = on_done,
                                .gone = on_gone,
                                .flushed = on_flushed,
                                .peer_closed = on_peer_closed};
    server = conn_server_new(base, &lim, &cb);
    assert_non_null(server);
}

static int setup(void **state) {
    (void)state;
    start(16, 0);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    conn_server_free(server);
    evbuffer_free(answer);
    event_base_free(base);
    return 0;
}

static void spin(void) {
    for (int i = 0; i < 8; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
}

/* A connection from addr (IPv4 text, or NULL for a unix peer): the client's
 * end, or -1 when the layer refused it (its end is returned in *refused). */
static int connect_from(const char *addr, int *refused) {
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(40000)};
    if (addr)
        assert_int_equal(inet_pton(AF_INET, addr, &in.sin_addr), 1);
    int rc = conn_server_adopt(server, sv[1], addr ? (struct sockaddr *)&in : NULL,
                               addr ? sizeof(in) : 0);
    if (rc < 0) {
        if (refused)
            *refused = sv[0];
        else
            close(sv[0]);
        return -1;
    }
    return sv[0];
}

static int client(void) {
    return connect_from(NULL, NULL);
}

static void put(int fd, const char *s) {
    assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
    spin();
}

/* What the layer wrote so far, NUL-terminated (static buffer); *eof says
 * whether it closed its end. */
static char got[1 << 20];
static const char *take(int fd, bool *eof) {
    size_t len = 0;
    bool end = false;
    for (;;) {
        ssize_t n = read(fd, got + len, sizeof(got) - 1 - len);
        if (n > 0) {
            len += (size_t)n;
            continue;
        }
        end = n == 0;
        break;
    }
    got[len] = '\0';
    if (eof)
        *eof = end;
    return got;
}

static int count(const char *s, const char *what) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)) != NULL; p += strlen(what))
        n++;
    return n;
}

/* 100 requests in one write: 100 answers, in order, each with its length. */
static void test_pipelining(void **state) {
    (void)state;
    int fd = client();
    char reqs[100 * 40] = "";
    for (int i = 0; i < 100; i++)
        strcat(reqs, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    put(fd, reqs);
    for (int i = 0; i < 20 && seen.done < 100; i++)
        spin();
    const char *out = take(fd, NULL);
    assert_int_equal(count(out, "HTTP/1.1 200 OK\r\n"), 100);
    assert_int_equal(count(out, "Content-Length: 3\r\n"), 100);
    assert_int_equal(count(out, "\r\nDate: "), 100);
    assert_int_equal(seen.done, 100);
    assert_int_equal(conn_server_open(server), 1);
    close(fd);
}

/* A request with a body, one byte at a time. */
static void test_byte_by_byte(void **state) {
    (void)state;
    int fd = client();
    const char *req = "POST /v1/thumbnails HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
    for (const char *p = req; *p; p++) {
        assert_int_equal(write(fd, p, 1), 1);
        spin();
    }
    assert_int_equal(seen.requests, 1);
    assert_int_equal(seen.body_len, 5);
    assert_memory_equal(seen.body, "hello", 5);
    assert_non_null(strstr(take(fd, NULL), "HTTP/1.1 200 OK\r\n"));
    close(fd);
}

/* A chunked body, dechunked. */
static void test_chunked(void **state) {
    (void)state;
    int fd = client();
    put(fd,
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n");
    assert_int_equal(seen.requests, 1);
    assert_int_equal(seen.body_len, 5);
    assert_memory_equal(seen.body, "hello", 5);
    close(fd);
}

/* HTTP/1.0 closes unless it asks to keep alive; Connection: close closes. */
static void test_keep_alive_rules(void **state) {
    (void)state;
    bool eof;
    int fd = client();
    put(fd, "GET / HTTP/1.0\r\n\r\n");
    const char *out = take(fd, &eof);
    assert_non_null(strstr(out, "Connection: close\r\n"));
    assert_true(eof);
    close(fd);

    fd = client();
    put(fd, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    out = take(fd, &eof);
    assert_non_null(strstr(out, "Connection: keep-alive\r\n"));
    assert_false(eof);
    put(fd, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_non_null(strstr(take(fd, &eof), "HTTP/1.1 200 OK"));
    assert_false(eof);
    close(fd);
    spin();

    fd = client();
    put(fd, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
    out = take(fd, &eof);
    assert_non_null(strstr(out, "Connection: close\r\n"));
    assert_true(eof);
    close(fd);
    spin();
    assert_int_equal(conn_server_open(server), 0);
}

/* Expect: 100-continue: 100 before the body; refused at once when too large. */
static void test_continue(void **state) {
    (void)state;
    bool eof;
    int fd = client();
    put(fd, "POST / HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    assert_string_equal(take(fd, NULL), "HTTP/1.1 100 Continue\r\n\r\n");
    assert_int_equal(seen.requests, 0);
    put(fd, "hello");
    assert_int_equal(seen.requests, 1);
    assert_non_null(strstr(take(fd, NULL), "HTTP/1.1 200 OK"));
    close(fd);

    fd = client();
    put(fd, "POST / HTTP/1.1\r\nContent-Length: 999999\r\nExpect: 100-continue\r\n\r\n");
    const char *out = take(fd, &eof);
    assert_null(strstr(out, "100 Continue"));
    assert_non_null(strstr(out, "HTTP/1.1 413 "));
    assert_non_null(strstr(out, "\"too_large\""));
    /* The layer lingers: reads on until the client is done, then closes. */
    put(fd, "more body the client sends anyway");
    shutdown(fd, SHUT_WR);
    spin();
    take(fd, &eof);
    assert_true(eof);
    assert_int_equal(seen.requests, 1); /* the first only */
    close(fd);
}

/* What request smuggling needs is refused with 400 and a close; the bytes
 * after it are never taken as a request. */
static void test_smuggling(void **state) {
    (void)state;
    static const char *const forms[] = {
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "GET / HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\nHost: x\n\n",
        "GET http://example.test/ HTTP/1.1\r\n\r\n",
        "CONNECT example.test:443 HTTP/1.1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        int fd = client();
        char req[512];
        snprintf(req, sizeof(req), "%sGET /smuggled HTTP/1.1\r\n\r\n", forms[i]);
        put(fd, req);
        shutdown(fd, SHUT_WR);
        spin();
        bool eof;
        const char *out = take(fd, &eof);
        assert_int_equal(count(out, "HTTP/1.1 "), 1);
        assert_non_null(strstr(out, "HTTP/1.1 400 "));
        assert_non_null(strstr(out, "\"bad_request\""));
        assert_non_null(strstr(out, "Connection: close\r\n"));
        assert_true(eof);
        close(fd);
    }
    assert_int_equal(seen.requests, 0);
    spin();
    assert_int_equal(conn_server_open(server), 0);
}

/* Over-limit headers: 400; a Transfer-Encoding other than chunked: 501. */
static void test_limits(void **state) {
    (void)state;
    int fd = client();
    char req[2048];
    snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nX-Big: %01500d\r\n\r\n", 0);
    put(fd, req);
    assert_non_null(strstr(take(fd, NULL), "HTTP/1.1 400 "));
    close(fd);
    fd = client();
    put(fd, "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n");
    assert_non_null(strstr(take(fd, NULL), "HTTP/1.1 501 "));
    close(fd);
    spin();
}

/* One address holds at most max_per_client connections; another address,
 * and an exempt one, still get in. */
static void test_per_client(void **state) {
    (void)state;
    teardown(state);
    start(16, 2);
    int a = connect_from("10.0.0.1", NULL), b = connect_from("10.0.0.1", NULL);
    assert_true(a >= 0 && b >= 0);
    put(a, "GET /hea"); /* half a request line */
    int refused = -1;
    assert_int_equal(connect_from("10.0.0.1", &refused), -1);
    const char *out = take(refused, NULL);
    assert_non_null(strstr(out, "HTTP/1.1 429 "));
    assert_non_null(strstr(out, "\"too_many_connections\""));
    close(refused);
    int c = connect_from("10.0.0.2", NULL);
    assert_true(c >= 0);
    put(c, "GET / HTTP/1.1\r\n\r\n");
    assert_non_null(strstr(take(c, NULL), "HTTP/1.1 200 OK"));
    close(b);
    spin();
    int d = connect_from("10.0.0.1", NULL); /* room again */
    assert_true(d >= 0);

    char why[128];
    assert_int_equal(cidr_list_parse(&exempt, "10.9.0.0/16", why, sizeof(why)), 0);
    teardown(state);
    start(16, 1);
    int p1 = connect_from("10.9.1.1", NULL), p2 = connect_from("10.9.1.1", NULL);
    assert_true(p1 >= 0 && p2 >= 0); /* a trusted proxy is not capped */
    cidr_list_free(&exempt);
    memset(&exempt, 0, sizeof(exempt));
    close(a);
    close(c);
    close(d);
    close(p1);
    close(p2);
}

/* The head has http.timeout from its first byte: then 408 and a close. An
 * idle connection is closed after it too. */
static void test_head_deadline(void **state) {
    (void)state;
    int slow = client(), idle = client();
    put(slow, "GET /healthz HT");
    conn_server_sweep(server, units_mono_ms() + TIMEOUT_MS - 500);
    spin();
    assert_int_equal(conn_server_open(server), 2);
    conn_server_sweep(server, units_mono_ms() + TIMEOUT_MS + 10);
    spin();
    const char *out = take(slow, NULL);
    assert_non_null(strstr(out, "HTTP/1.1 408 "));
    assert_non_null(strstr(out, "\"request_timeout\""));
    bool eof;
    take(idle, &eof);
    assert_true(eof);
    assert_int_equal(conn_server_stats(server)->head_timeouts, 1);
    close(slow);
    close(idle);
}

/* A body must keep up CONN_BODY_MIN_RATE over a sliding window: a fast
 * start does not buy a trickle afterwards. */
static void test_body_rate(void **state) {
    (void)state;
    int trickle = client(), steady = client();
    put(trickle, "POST / HTTP/1.1\r\nContent-Length: 150000\r\n\r\n");
    put(steady, "POST / HTTP/1.1\r\nContent-Length: 150000\r\n\r\n");
    static char chunk[50000];
    memset(chunk, 'x', sizeof(chunk));
    assert_int_equal(write(trickle, chunk, sizeof(chunk)), (ssize_t)sizeof(chunk));
    spin();
    long long now = units_mono_ms();
    for (int tick = 1; tick <= CONN_BODY_WINDOW + 1; tick++) {
        assert_int_equal(write(trickle, chunk, 10), 10); /* 10 bytes a second */
        assert_int_equal(write(steady, chunk, 2000), 2000);
        spin();
        conn_server_sweep(server, now + tick * 1000);
        spin();
        if (tick < CONN_BODY_WINDOW)
            assert_int_equal(conn_server_open(server), 2);
    }
    assert_non_null(strstr(take(trickle, NULL), "HTTP/1.1 408 "));
    assert_int_equal(conn_server_stats(server)->body_too_slow, 1);
    assert_int_equal(conn_server_open(server), 2); /* the trickle lingers; steady reads on */
    shutdown(trickle, SHUT_WR);
    spin();
    assert_int_equal(conn_server_open(server), 1);
    close(trickle);
    close(steady);
}

/* Every connection counts against max_connections; at the limit the oldest
 * idle keep-alive connection makes room, else a new one is refused. */
static void test_max_connections(void **state) {
    (void)state;
    teardown(state);
    start(2, 0);
    int a = client();
    put(a, "GET / HTTP/1.1\r\n\r\n"); /* a has served a request: idle, reusable */
    int b = client();                 /* b has sent nothing */
    put(b, "GET /x");
    int c = client(); /* a makes room */
    assert_true(c >= 0);
    bool eof;
    take(a, &eof);
    assert_true(eof);
    assert_int_equal(conn_server_stats(server)->reused, 1);
    assert_int_equal(client(), -1); /* b and c are mid-request or new: no room */
    assert_int_equal(conn_server_open(server), 2);
    close(a);
    close(b);
    close(c);
}

/* A request in hand when its client leaves: gone, if the layer above says
 * so (a long-poll); else the answer is still made, and its failed write
 * closes the connection. */
static void test_client_leaves(void **state) {
    (void)state;
    seen.hold = true;
    seen.close_on_peer = true;
    int fd = client();
    put(fd, "GET /wait HTTP/1.1\r\n\r\n");
    assert_non_null(seen.held);
    close(fd);
    spin();
    assert_int_equal(seen.gone, 1);
    assert_null(seen.held);
    assert_int_equal(conn_server_open(server), 0);

    seen.close_on_peer = false;
    fd = client();
    put(fd, "GET /wait HTTP/1.1\r\n\r\n");
    shutdown(fd, SHUT_WR); /* half-closed: it still reads */
    spin();
    assert_non_null(seen.held);
    answer_now(seen.held);
    spin();
    bool eof;
    assert_non_null(strstr(take(fd, &eof), "HTTP/1.1 200 OK"));
    assert_true(eof);
    assert_int_equal(seen.done, 1);
    close(fd);
}

/* An answer the client does not read is dropped after http.timeout. */
static void test_write_timeout(void **state) {
    (void)state;
    seen.big = 8 << 20;
    int fd = client();
    put(fd, "GET /big HTTP/1.1\r\n\r\n");
    assert_int_equal(seen.requests, 1);
    assert_int_equal(seen.done, 0);
    conn_server_sweep(server, units_mono_ms() + TIMEOUT_MS + 10);
    spin();
    assert_int_equal(seen.gone, 1);
    assert_int_equal(conn_server_stats(server)->write_timeouts, 1);
    assert_int_equal(conn_server_open(server), 0);
    close(fd);
}

/* A streamed body: flushed after each piece is out, done at the end. */
static void test_stream(void **state) {
    (void)state;
    seen.hold = true;
    int fd = client();
    put(fd, "GET /stream HTTP/1.1\r\n\r\n");
    struct conn *k = seen.held;
    conn_header(k, "Content-Length", "10");
    evbuffer_add(answer, "01234", 5);
    conn_send(k, 200, answer, CONN_STREAM);
    spin();
    assert_int_equal(conn_stream_add(k, "56789", 5), 0);
    spin();
    assert_true(seen.flushed >= 1);
    assert_int_equal(seen.done, 0);
    conn_stream_end(k);
    spin();
    assert_int_equal(seen.done, 1);
    const char *out = take(fd, NULL);
    assert_int_equal(count(out, "Content-Length:"), 1);
    assert_non_null(strstr(out, "\r\n\r\n0123456789"));
    close(fd);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN); /* as in the daemon */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pipelining, setup, teardown),
        cmocka_unit_test_setup_teardown(test_byte_by_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_alive_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_continue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_smuggling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_per_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_leaves, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
