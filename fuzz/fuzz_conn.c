/* fuzz_conn.c — libFuzzer harness for the connection layer of the HTTP core
 * (src/http/core/conn.c, with its parser): the input goes to a real
 * connection (one end of a socketpair served by the layer) in pieces whose
 * sizes come from its first bytes, with the event loop run between pieces;
 * then the client shuts its side. Every request is answered at once (a HEAD
 * without its body, a target starting "/s" as a streamed body). Checked: no
 * crash or leak; the connection ends by itself once the client is done (no
 * hang); everything the layer wrote is a sequence of whole answers, each
 * starting with a status line and carrying its Content-Length. */
#include "check.h"
#include "conn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct event_base *base;
static struct conn_server *server;
static struct evbuffer *body;

static void on_request(struct conn *k, void *arg) {
    (void)arg;
    const struct parse_request *r = conn_request(k);
    size_t len;
    const char *target = parse_target(r, &len);
    evbuffer_add(body, "ok\n", 3);
    conn_header(k, "Content-Type", "text/plain");
    if (len >= 2 && target[1] == 's' && r->method != HTTP_HEAD) {
        conn_header(k, "Content-Length", "8");
        conn_send(k, 200, body, CONN_STREAM); /* the 3 bytes, then 5 more */
        conn_stream_add(k, "more\n", 5);
        conn_stream_end(k);
        return;
    }
    conn_send(k, r->method == HTTP_HEAD ? 204 : 200, body,
              r->method == HTTP_HEAD ? CONN_HEAD_ONLY : 0);
}

static void setup(void) {
    signal(SIGPIPE, SIG_IGN); /* as in the daemon: a write to a closed peer fails, not kills */
    base = event_base_new();
    body = evbuffer_new();
    struct conn_limits lim = {.max_header = 2048,
                              .max_body = 4096,
                              .timeout_ms = 30000,
                              .max_connections = 4,
                              .max_per_client = 0};
    struct conn_callbacks cb = {.request = on_request};
    server = conn_server_new(base, &lim, &cb);
    CHECK(base && body && server);
}

/* Reads what the layer wrote into out. */
static void collect(int fd, struct evbuffer *out) {
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        evbuffer_add(out, buf, (size_t)n);
}

/* Walks the answers in out: each a status line, headers, and the body its
 * Content-Length says (none for 1xx, 204, 304). */
static void check_answers(struct evbuffer *out) {
    size_t len = evbuffer_get_length(out);
    const char *p = (const char *)evbuffer_pullup(out, -1);
    size_t off = 0;
    while (off < len) {
        CHECK(len - off >= 13 && memcmp(p + off, "HTTP/1.1 ", 9) == 0);
        int status = atoi(p + off + 9);
        CHECK(status >= 100 && status <= 599 && p[off + 12] == ' ');
        const char *end = memmem(p + off, len - off, "\r\n\r\n", 4);
        CHECK(end != NULL);
        size_t head_len = (size_t)(end - (p + off)) + 4;
        long long clen = -1;
        const char *cl = memmem(p + off, head_len, "\r\nContent-Length: ", 18);
        if (cl)
            clen = atoll(cl + 18);
        bool bodiless = status < 200 || status == 204 || status == 304;
        CHECK(bodiless || clen >= 0);
        off += head_len + (bodiless ? 0 : (size_t)clen);
        CHECK(off <= len);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2)
        return 0;
    if (server == NULL)
        setup();
    size_t step = 1 + data[0] % 64;
    bool whole = data[1] & 1;
    data += 2;
    size -= 2;
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    int sndbuf = 1 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    CHECK(conn_server_adopt(server, sv[1], NULL, 0) == 0);
    struct evbuffer *out = evbuffer_new();
    size_t off = 0;
    while (off < size) {
        size_t n = whole ? size - off : (size - off < step ? size - off : step);
        ssize_t w = write(sv[0], data + off, n);
        if (w < 0 && errno != EAGAIN)
            break; /* the layer closed its end (an error answer's linger ended) */
        if (w > 0)
            off += (size_t)w;
        event_base_loop(base, EVLOOP_NONBLOCK);
        collect(sv[0], out);
    }
    shutdown(sv[0], SHUT_WR);
    /* The client is done: the connection must end by itself, promptly. */
    for (int i = 0; i < 64 && conn_server_open(server) > 0; i++) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        collect(sv[0], out);
    }
    CHECK(conn_server_open(server) == 0);
    collect(sv[0], out);
    check_answers(out);
    evbuffer_free(out);
    close(sv[0]);
    return 0;
}
