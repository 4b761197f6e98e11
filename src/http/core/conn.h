/* conn.h — the HTTP/1.1 connection layer of an http child, on libevent's
 * loop: accept on the inherited socket, read, parse (parse.c), hand each
 * whole request to the layer above, write its answer in one writev, keep the
 * connection alive or close it, and enforce what a connection may cost:
 * http.max_connections, connections per client address, a deadline for the
 * head, a minimum rate for the body, a write timeout, a lingering close
 * after an error. Nothing in it knows the routes (exchange.c does). */
#ifndef TH_HTTP_CONN_H
#define TH_HTTP_CONN_H

#include "cidr.h"
#include "parse.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A body must keep up at least CONN_BODY_MIN_RATE bytes per second over any
 * CONN_BODY_WINDOW seconds, or the connection is cut (408). */
#define CONN_BODY_MIN_RATE 1024
#define CONN_BODY_WINDOW   10

/* After an error answer the rest of what the client sends is read and
 * dropped, so that it reads the answer instead of a reset: until it closes,
 * stays silent for CONN_LINGER_IDLE_MS, or CONN_LINGER_MAX_MS have passed. */
#define CONN_LINGER_IDLE_MS 5000
#define CONN_LINGER_MAX_MS  30000

#define CONN_RID_LEN 16

struct conn;
struct conn_server;

struct conn_limits {
    size_t max_header;      /* http.max_header */
    size_t max_body;        /* http.max_body */
    long long timeout_ms;   /* http.timeout: the head, an idle connection, a stalled write */
    size_t max_connections; /* http.max_connections: every open connection counts */
    size_t max_per_client;  /* http.max_connections_per_client; 0: no cap */
    const struct cidr_list *exempt; /* peers not capped per address (trusted proxies), or NULL */
};

/* What the layer above is told. user is what conn_set_user gave for the
 * request in hand. */
struct conn_callbacks {
    /* A whole request is in conn_request(k): answer it with conn_send, now or
     * later. */
    void (*request)(struct conn *k, void *arg);
    /* The answer has been written completely. */
    void (*done)(struct conn *k, void *user);
    /* A streamed body: everything given so far has been written. */
    void (*flushed)(struct conn *k, void *user);
    /* The connection closed before the answer was written (the client went
     * away, a write failed or stalled, the server stops): forget k. */
    void (*gone)(struct conn *k, void *user);
    /* The client shut its sending side while the request is in hand: true
     * closes the connection now (gone follows), false answers first. */
    bool (*peer_closed)(struct conn *k, void *user);
    void *arg;
};

/* Counters since start, for /metrics. */
struct conn_stats {
    uint64_t accepted;
    uint64_t refused_per_client; /* over http.max_connections_per_client */
    uint64_t reused;             /* idle keep-alive connections closed to make room */
    uint64_t head_timeouts;      /* the head not in within http.timeout */
    uint64_t body_too_slow;      /* a body under the minimum rate */
    uint64_t write_timeouts;     /* a client that did not read its answer */
    uint64_t refused;            /* requests refused by the layer (400, 413, 431, ...) */
    uint64_t accept_pauses;      /* accepting paused because file descriptors ran out */
};

struct conn_server *conn_server_new(struct event_base *base, const struct conn_limits *limits,
                                    const struct conn_callbacks *cb);

/* Accepts on fd (a listening socket, left open when the server is freed).
 * Returns 0, or -1 with errno. */
int conn_server_listen(struct conn_server *s, int fd);

/* Serves an accepted, non-blocking socket (a test's socketpair, say) as if it
 * had come from addr. Returns 0, or -1 when it was refused (fd is closed). */
int conn_server_adopt(struct conn_server *s, int fd, const struct sockaddr *addr, socklen_t len);

/* A graceful stop: no more accepting; idle connections close now, the others
 * after the answer in hand, with Connection: close. */
void conn_server_stop(struct conn_server *s);

/* Applies the deadlines as of now_ms (CLOCK_MONOTONIC), as the layer's own
 * timer does every second. */
void conn_server_sweep(struct conn_server *s, long long now_ms);

/* Open connections. */
size_t conn_server_open(const struct conn_server *s);

const struct conn_stats *conn_server_stats(const struct conn_server *s);

/* Writes 16 random lowercase hex digits and a NUL (no system call). */
void conn_server_request_id(struct conn_server *s, char out[CONN_RID_LEN + 1]);

/* Closes every connection (gone for the requests in hand) and frees s. */
void conn_server_free(struct conn_server *s);

/* The request in hand (valid until its answer is written). */
const struct parse_request *conn_request(const struct conn *k);

/* The peer as text ("unix" for a unix socket). */
const char *conn_peer(const struct conn *k);

void conn_set_user(struct conn *k, void *user);

/* Adds a header to the answer being made. Content-Length and Content-Type
 * given here replace the layer's own (the body's length; application/json). */
void conn_header(struct conn *k, const char *name, const char *value);

/* Flags of conn_send. */
#define CONN_HEAD_ONLY 1u /* a HEAD: the body's length is sent, not the body */
#define CONN_STREAM    2u /* the body follows: conn_stream_add, then conn_stream_end */

/* Answers the request in hand with status, the headers given so far and
 * body (moved, not copied; NULL for none). */
void conn_send(struct conn *k, int status, struct evbuffer *body, unsigned flags);

/* Appends len bytes (copied) to a streamed body. Returns 0, or -1 when the
 * connection is gone. */
int conn_stream_add(struct conn *k, const void *data, size_t len);

/* Ends a streamed body: done follows once it is written. */
void conn_stream_end(struct conn *k);

/* Closes the connection now (a streamed body whose source failed: the client
 * sees a short body, never a wrong one); gone follows. */
void conn_abort(struct conn *k);

/* The reason phrase of an HTTP status ("OK", "Not Found", ...). */
const char *conn_reason(int status);

#endif
