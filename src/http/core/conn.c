/* conn.c — the connection layer (conn.h).
 *
 * A connection is registered with the loop once, when it is accepted: one
 * persistent, edge-triggered read event and one write event on the socket,
 * so no epoll_ctl is made per request. Edge-triggered means "read until the
 * socket has nothing more" (a short read says so, as nginx decides), and a
 * socket the layer stopped reading (a request in hand, its input buffer
 * full) is read again by the layer itself when it is ready for more.
 *
 * States: IDLE (no byte of the next request yet), HEAD and BODY (a request
 * coming in), BUSY (a whole request handed up; its answer being made or
 * written), LINGER (an error answer, then the client's bytes dropped until
 * it closes), CLOSED (the socket is gone; the struct waits for the last
 * function on the stack that uses it, then returns to the free list).
 *
 * Deadlines are checked once a second by one timer for all connections:
 * IDLE and HEAD may last http.timeout, a BODY must bring
 * CONN_BODY_MIN_RATE bytes/s over a sliding CONN_BODY_WINDOW seconds, an
 * answer that makes no progress for http.timeout is dropped. */
#include "conn.h"

#include "log.h"
#include "respond.h"
#include "units.h"

#include <errno.h>
#include <event2/event_struct.h>
#include <event2/listener.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define IN_SIZE           16384 /* a connection's input buffer */
#define FREE_KEEP         64    /* closed connections kept for reuse */
#define BODY_KEEP         65536 /* a body buffer larger than this is freed after its request */
#define ACCEPT_BACKOFF_MS 500
#define SWEEP_MS          1000
#define READ_BUDGET       (256 * 1024) /* bytes read per turn of the loop before others get theirs */

enum conn_state { ST_IDLE, ST_HEAD, ST_BODY, ST_BUSY, ST_LINGER, ST_CLOSED };

struct conn {
    struct conn_server *s;
    int fd;
    enum conn_state state;
    struct event rd, wr;
    struct event resume; /* a zero timer: go on reading after the others had a turn */
    size_t read_now;     /* bytes read in this turn */
    bool rd_ready;       /* the socket may hold bytes not read yet */
    bool peer_eof;       /* the client shut its sending side (read returned 0) */
    bool rdhup;          /* epoll said so (EPOLLRDHUP): read on to the end */
    bool pumping;        /* pump is on the stack: a nested call only asks it to go on */
    bool repump;
    bool keep;        /* the request in hand allows another after it */
    bool answered;    /* conn_send was called for the request in hand */
    bool stream_open; /* a streamed body is still coming */
    bool close_after; /* close once the answer is written */
    bool draining;    /* LINGER: the answer is out, the client's bytes are dropped */
    bool flush_due;   /* a streamed piece is to be told written (flushed) */
    bool failed;      /* a write under the layer above failed, or it aborted: close */
    bool hdr_clen, hdr_ctype;
    bool exempt; /* not capped per address */
    bool is_ip;
    unsigned refs;   /* functions on the stack using k */
    unsigned served; /* answers written on this connection */
    void *user;
    char *in; /* IN_SIZE bytes; [in_off, in_len) not parsed yet */
    size_t in_off, in_len;
    struct parse ps;
    struct evbuffer *out;
    char *hdr; /* the answer's own headers, as "Name: value\r\n" */
    size_t hdr_len, hdr_cap;
    long long since_ms; /* IDLE: since when; HEAD: the first byte; LINGER: the last byte */
    long long write_ms; /* the last progress of a pending write */
    long long linger_until_ms;
    uint32_t body_now; /* body bytes since the last sweep */
    uint32_t body_win[CONN_BODY_WINDOW];
    unsigned body_ticks;
    unsigned char addr[16];
    char peer[CIDR_ADDR_TEXT_MAX];
    struct conn *next, *prev; /* open connections, or the free list (next) */
    struct conn *same_next;   /* the same bucket of client addresses */
};

struct conn_server {
    struct event_base *base;
    struct conn_limits lim;
    struct conn_callbacks cb;
    struct evconnlistener *listener;
    struct event *sweep, *backoff;
    struct conn *open_head, *open_tail; /* oldest first */
    size_t nopen;
    size_t nreusable; /* IDLE connections that have served a request */
    struct conn *free_list;
    size_t nfree;
    struct conn **buckets; /* by client address */
    size_t nbuckets;
    bool stopping;
    bool full;       /* not accepting: max_connections are open, none idle */
    bool out_of_fds; /* not accepting for a moment: accept failed (EMFILE) */
    bool fds_logged; /* the current shortage has been logged */
    bool listening;  /* the listener is enabled */
    char date[64];   /* "Date: ...\r\n" */
    size_t date_len;
    time_t date_at;
    uint64_t rid_state;
    char *scratch; /* the head of an answer being formatted */
    size_t scratch_cap;
    struct conn_stats stats;
};

static void pump(struct conn *k);
static void flush(struct conn *k);
static void close_conn(struct conn *k);

/* ---- time, ids ------------------------------------------------------------ */

static void refresh_date(struct conn_server *s) {
    time_t now = time(NULL);
    if (now == s->date_at && s->date_len)
        return;
    struct tm tm;
    gmtime_r(&now, &tm);
    s->date_len = strftime(s->date, sizeof(s->date), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    s->date_at = now;
}

void conn_server_request_id(struct conn_server *s, char out[CONN_RID_LEN + 1]) {
    /* splitmix64, seeded from getrandom at start */
    uint64_t z = (s->rid_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    static const char hex[] = "0123456789abcdef";
    for (int i = CONN_RID_LEN - 1; i >= 0; i--) {
        out[i] = hex[z & 15];
        z >>= 4;
    }
    out[CONN_RID_LEN] = '\0';
}

const char *conn_reason(int status) {
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

/* ---- accepting ------------------------------------------------------------ */

/* Whether the listener should take connections now, and makes it so: not
 * while stopping, out of file descriptors, or full (unless an idle
 * keep-alive connection can make room). */
static void update_accept(struct conn_server *s) {
    bool at_max = s->nopen >= s->lim.max_connections;
    if (s->listener == NULL)
        return;
    bool want = !s->stopping && !s->out_of_fds && (!at_max || s->nreusable > 0);
    if (want == s->listening)
        return;
    if (want)
        evconnlistener_enable(s->listener);
    else
        evconnlistener_disable(s->listener);
    s->listening = want;
    if (!want && at_max && !s->out_of_fds && !s->stopping) {
        log_warn("%zu connections open (http.max_connections), none idle: not accepting until "
                 "one closes",
                 s->nopen);
        s->full = true;
    } else if (want && s->full) {
        log_info("%zu connections open: accepting again", s->nopen);
        s->full = false;
    }
}

static size_t bucket_of(const struct conn_server *s, const unsigned char addr[16]) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (int i = 0; i < 16; i++)
        h = (h ^ addr[i]) * 1099511628211ULL;
    return (size_t)(h & (s->nbuckets - 1));
}

static size_t same_client(const struct conn_server *s, const unsigned char addr[16]) {
    size_t n = 0;
    for (const struct conn *k = s->buckets[bucket_of(s, addr)]; k; k = k->same_next)
        n += memcmp(k->addr, addr, 16) == 0;
    return n;
}

static void set_state(struct conn *k, enum conn_state st) {
    bool was = k->state == ST_IDLE && k->served > 0;
    k->state = st;
    bool is = st == ST_IDLE && k->served > 0;
    if (was != is) {
        if (is)
            k->s->nreusable++;
        else
            k->s->nreusable--;
        if (k->s->nopen >= k->s->lim.max_connections)
            update_accept(k->s);
    }
}

/* Closes the oldest idle keep-alive connection to make room (nginx's
 * reusable connections). Returns whether one was closed. */
static bool reuse_one(struct conn_server *s) {
    for (struct conn *k = s->open_head; k; k = k->next) {
        if (k->state == ST_IDLE && k->served > 0) {
            s->stats.reused++;
            close_conn(k);
            return true;
        }
    }
    return false;
}

/* The peer of an accepted socket as cidr.h holds addresses, and as text. */
static void peer_of(struct conn *k, const struct sockaddr *sa, socklen_t len) {
    memset(k->addr, 0, sizeof(k->addr));
    k->is_ip = false;
    if (sa && sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        k->addr[10] = k->addr[11] = 0xff;
        memcpy(k->addr + 12, &in->sin_addr, 4);
        k->is_ip = true;
    } else if (sa && sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        memcpy(k->addr, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        k->is_ip = true;
    }
    if (k->is_ip)
        cidr_addr_text(k->addr, k->peer, sizeof(k->peer));
    else
        snprintf(k->peer, sizeof(k->peer), "unix");
}

/* Formats an answer's head into s->scratch: the status line, Date,
 * Content-Length (clen >= 0), the default Content-Type unless hdr has one,
 * hdr, Connection. Returns its length, or 0 when out of memory. */
static size_t format_head(struct conn_server *s, int status, long long clen, bool ctype,
                          const char *hdr, size_t hdr_len, const char *connection) {
    size_t need = 128 + s->date_len + hdr_len + 64;
    if (need > s->scratch_cap) {
        char *grown = realloc(s->scratch, need);
        if (grown == NULL)
            return 0;
        s->scratch = grown;
        s->scratch_cap = need;
    }
    char *p = s->scratch;
    const char *reason = conn_reason(status);
    size_t rlen = strlen(reason);
    memcpy(p, "HTTP/1.1 ", 9);
    p[9] = (char)('0' + status / 100 % 10);
    p[10] = (char)('0' + status / 10 % 10);
    p[11] = (char)('0' + status % 10);
    p[12] = ' ';
    memcpy(p + 13, reason, rlen);
    p += 13 + rlen;
    *p++ = '\r';
    *p++ = '\n';
    memcpy(p, s->date, s->date_len);
    p += s->date_len;
    if (clen >= 0) {
        static const char cl[] = "Content-Length: ";
        char digits[24];
        int n = 0;
        do
            digits[n++] = (char)('0' + clen % 10);
        while ((clen /= 10) > 0);
        memcpy(p, cl, sizeof(cl) - 1);
        p += sizeof(cl) - 1;
        while (n > 0)
            *p++ = digits[--n];
        *p++ = '\r';
        *p++ = '\n';
    }
    if (ctype) {
        static const char json[] = "Content-Type: application/json\r\n";
        memcpy(p, json, sizeof(json) - 1);
        p += sizeof(json) - 1;
    }
    memcpy(p, hdr, hdr_len);
    p += hdr_len;
    if (connection)
        p += sprintf(p, "Connection: %s\r\n", connection);
    memcpy(p, "\r\n", 2);
    p += 2;
    return (size_t)(p - s->scratch);
}

/* An error document of the layer's own into out, with its X-Request-Id in
 * hdr (hdr_cap bytes). Returns 0 or -1. */
static int error_answer(struct conn_server *s, struct evbuffer *out, char *hdr, size_t hdr_cap,
                        size_t *hdr_len, const char *code, const char *message) {
    char rid[CONN_RID_LEN + 1];
    conn_server_request_id(s, rid);
    *hdr_len = (size_t)snprintf(hdr, hdr_cap, "X-Request-Id: %s\r\n", rid);
    log_debug("refused a request (%s): %s", code, message);
    return respond_error_body(out, code, message, NULL);
}

/* A connection over the per-address cap: a short answer, then closed. */
static void refuse_early(struct conn_server *s, int fd, const char *peer) {
    s->stats.refused_per_client++;
    log_warn("%s holds http.max_connections_per_client (%zu) connections: refusing more", peer,
             s->lim.max_per_client);
    struct evbuffer *body = evbuffer_new();
    char hdr[64];
    size_t hdr_len = 0;
    char message[160];
    snprintf(message, sizeof(message),
             "this address has %zu connections open (http.max_connections_per_client); close "
             "some or reuse them",
             s->lim.max_per_client);
    if (body &&
        error_answer(s, body, hdr, sizeof(hdr), &hdr_len, "too_many_connections", message) == 0) {
        refresh_date(s);
        size_t n =
            format_head(s, 429, (long long)evbuffer_get_length(body), true, hdr, hdr_len, "close");
        if (n && evbuffer_prepend(body, s->scratch, n) == 0)
            (void)evbuffer_write(body, fd); /* best effort: the socket's buffer is empty */
    }
    if (body)
        evbuffer_free(body);
    close(fd);
}

static struct conn *conn_get(struct conn_server *s) {
    struct conn *k = s->free_list;
    if (k) {
        s->free_list = k->next;
        s->nfree--;
        return k;
    }
    k = calloc(1, sizeof(*k));
    if (k == NULL)
        return NULL;
    k->in = malloc(IN_SIZE);
    k->out = evbuffer_new();
    if (k->in == NULL || k->out == NULL) {
        free(k->in);
        if (k->out)
            evbuffer_free(k->out);
        free(k);
        return NULL;
    }
    struct parse_limits pl = {.max_header = s->lim.max_header, .max_body = s->lim.max_body};
    parse_init(&k->ps, &pl);
    return k;
}

static void conn_destroy(struct conn *k) {
    parse_free(&k->ps);
    evbuffer_free(k->out);
    free(k->hdr);
    free(k->in);
    free(k);
}

/* k is closed and nothing on the stack uses it: back to the free list. */
static void recycle(struct conn *k) {
    struct conn_server *s = k->s;
    if (s->nfree >= FREE_KEEP || s->stopping) {
        conn_destroy(k);
        return;
    }
    evbuffer_drain(k->out, evbuffer_get_length(k->out));
    parse_next(&k->ps);
    parse_trim(&k->ps, BODY_KEEP);
    if (k->hdr_cap > 4096) {
        free(k->hdr);
        k->hdr = NULL;
        k->hdr_cap = 0;
    }
    k->next = s->free_list;
    s->free_list = k;
    s->nfree++;
}

static void unref(struct conn *k) {
    if (--k->refs == 0 && k->state == ST_CLOSED && !k->pumping)
        recycle(k);
}

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_resume(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);

int conn_server_adopt(struct conn_server *s, int fd, const struct sockaddr *addr, socklen_t len) {
    if (s->fds_logged) {
        log_info("accepting again after running out of file descriptors (%zu connections open)",
                 s->nopen);
        s->fds_logged = false;
    }
    struct conn probe;
    peer_of(&probe, addr, len);
    bool exempt = !probe.is_ip || (s->lim.exempt && cidr_list_match(s->lim.exempt, probe.addr));
    if (!exempt && s->lim.max_per_client && same_client(s, probe.addr) >= s->lim.max_per_client) {
        refuse_early(s, fd, probe.peer);
        return -1;
    }
    if (s->nopen >= s->lim.max_connections && !reuse_one(s)) {
        close(fd);
        return -1;
    }
    struct conn *k = conn_get(s);
    if (k == NULL) {
        log_error("out of memory for a connection");
        close(fd);
        return -1;
    }
    k->s = s;
    k->fd = fd;
    k->state = ST_IDLE;
    k->rd_ready = k->peer_eof = k->rdhup = k->pumping = k->repump = false;
    k->keep = k->answered = k->stream_open = k->close_after = k->draining = false;
    k->flush_due = k->failed = false;
    k->hdr_clen = k->hdr_ctype = false;
    k->refs = 0;
    k->served = 0;
    k->user = NULL;
    k->in_off = k->in_len = 0;
    k->hdr_len = 0;
    k->since_ms = units_mono_ms();
    k->write_ms = 0;
    k->body_now = 0;
    k->body_ticks = 0;
    memcpy(k->addr, probe.addr, sizeof(k->addr));
    memcpy(k->peer, probe.peer, sizeof(k->peer));
    k->is_ip = probe.is_ip;
    k->exempt = exempt;
    if (k->is_ip) {
        int one = 1; /* answers on a kept connection are not held back by Nagle */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    event_assign(&k->rd, s->base, fd, EV_READ | EV_CLOSED | EV_PERSIST | EV_ET, on_read, k);
    event_assign(&k->wr, s->base, fd, EV_WRITE | EV_PERSIST | EV_ET, on_write, k);
    evtimer_assign(&k->resume, s->base, on_resume, k);
    k->read_now = 0;
    if (event_add(&k->rd, NULL) < 0 || event_add(&k->wr, NULL) < 0) {
        event_del(&k->rd);
        log_error("cannot watch a connection");
        close(fd);
        k->state = ST_CLOSED;
        recycle(k);
        return -1;
    }
    k->prev = s->open_tail;
    k->next = NULL;
    if (s->open_tail)
        s->open_tail->next = k;
    else
        s->open_head = k;
    s->open_tail = k;
    size_t b = bucket_of(s, k->addr);
    k->same_next = s->buckets[b];
    s->buckets[b] = k;
    s->nopen++;
    s->stats.accepted++;
    update_accept(s);
    return 0;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr, int len,
                      void *arg) {
    (void)l;
    conn_server_adopt(arg, fd, addr, (socklen_t)len);
}

static void on_backoff(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    struct conn_server *s = arg;
    s->out_of_fds = false;
    update_accept(s);
}

/* accept failed for a reason other than a retriable one: out of file
 * descriptors (or kernel memory). Stop accepting for a moment instead of
 * spinning on a socket that stays readable, and say so once. */
static void on_accept_error(struct evconnlistener *l, void *arg) {
    (void)l;
    struct conn_server *s = arg;
    int err = EVUTIL_SOCKET_ERROR();
    s->stats.accept_pauses++;
    if (!s->fds_logged) {
        log_warn("cannot accept a connection (%s, %zu open): pausing accept for %d ms at a time "
                 "until it works again; raise the file limit (LimitNOFILE) or lower "
                 "http.max_connections",
                 strerror(err), s->nopen, ACCEPT_BACKOFF_MS);
        s->fds_logged = true;
    }
    s->out_of_fds = true;
    update_accept(s);
    struct timeval tv = {0, ACCEPT_BACKOFF_MS * 1000};
    event_add(s->backoff, &tv);
}

/* ---- reading ---------------------------------------------------------------- */

/* Starts an error answer of the layer's own, then a lingering close. */
static void refuse(struct conn *k, int status, const char *code, const char *message) {
    struct conn_server *s = k->s;
    s->stats.refused++;
    char hdr[64];
    size_t hdr_len = 0;
    struct evbuffer *body = evbuffer_new();
    if (body == NULL || error_answer(s, body, hdr, sizeof(hdr), &hdr_len, code, message) < 0) {
        if (body)
            evbuffer_free(body);
        close_conn(k);
        return;
    }
    refresh_date(s);
    size_t n =
        format_head(s, status, (long long)evbuffer_get_length(body), true, hdr, hdr_len, "close");
    if (n == 0 || evbuffer_add(k->out, s->scratch, n) < 0) {
        evbuffer_free(body);
        close_conn(k);
        return;
    }
    evbuffer_add_buffer(k->out, body);
    evbuffer_free(body);
    set_state(k, ST_LINGER);
    k->in_off = k->in_len = 0;
    k->write_ms = units_mono_ms();
    flush(k);
}

/* Reads into the free part of the input buffer. Returns 1 (bytes came), 0
 * (nothing now, or no room) or -1 (the connection is closed, or the peer's
 * end came and is handled). */
static int fill(struct conn *k) {
    if (k->in_off == k->in_len)
        k->in_off = k->in_len = 0;
    if (k->in_len == IN_SIZE && k->in_off > 0) {
        memmove(k->in, k->in + k->in_off, k->in_len - k->in_off);
        k->in_len -= k->in_off;
        k->in_off = 0;
    }
    size_t room = IN_SIZE - k->in_len;
    if (room == 0)
        return 0; /* a request in hand and more pipelined than fits: later */
    ssize_t n = read(k->fd, k->in + k->in_len, room);
    if (n > 0) {
        k->in_len += (size_t)n;
        k->read_now += (size_t)n;
        if ((size_t)n < room && !k->rdhup)
            k->rd_ready = false; /* a short read: the socket is empty (as nginx decides) */
        if (k->state == ST_IDLE) {
            set_state(k, ST_HEAD);
            k->since_ms = units_mono_ms();
        }
        return 1;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        k->rd_ready = false;
        return 0;
    }
    if (n < 0 && errno == EINTR)
        return 0;
    /* EOF or an error */
    k->rd_ready = false;
    if (n == 0 && k->state == ST_BUSY) {
        k->peer_eof = true;
        if (k->user && k->s->cb.peer_closed && k->s->cb.peer_closed(k, k->user))
            close_conn(k);
        return -1; /* the answer in hand is written, then the connection closes */
    }
    close_conn(k); /* between requests, or half a request: nothing to answer */
    return -1;
}

static void send_continue(struct conn *k) {
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    evbuffer_add(k->out, cont, sizeof(cont) - 1);
    flush(k);
}

/* Feeds the parser what is buffered; hands a whole request up. */
static void feed(struct conn *k) {
    size_t used = 0;
    enum parse_status st = parse_feed(&k->ps, k->in + k->in_off, k->in_len - k->in_off, &used);
    if (k->state == ST_BODY)
        k->body_now += (uint32_t)used;
    k->in_off += used;
    switch (st) {
    case PARSE_MORE:
        return;
    case PARSE_HEADERS:
        set_state(k, ST_BODY);
        k->body_now = 0;
        k->body_ticks = 0;
        memset(k->body_win, 0, sizeof(k->body_win));
        /* 100 unless the body is already coming (the parser leaves the
         * head's last LF for the next call: at most that is buffered). */
        if (k->ps.req.expect_continue && k->ps.req.body_expected && k->in_len - k->in_off <= 1)
            send_continue(k);
        return;
    case PARSE_COMPLETE:
        set_state(k, ST_BUSY);
        k->keep = k->ps.req.keep_alive;
        k->answered = false;
        k->user = NULL;
        k->hdr_len = 0;
        k->hdr_clen = k->hdr_ctype = false;
        k->s->cb.request(k, k->s->cb.arg);
        return;
    case PARSE_ERROR:
        refuse(k, k->ps.err.status, k->ps.err.code, k->ps.err.message);
        return;
    }
}

/* Drops what a lingering client sends; closes once it is done. */
static void drain(struct conn *k) {
    char buf[16384];
    for (;;) {
        ssize_t n = read(k->fd, buf, sizeof(buf));
        if (n > 0) {
            k->since_ms = units_mono_ms();
            if ((size_t)n < sizeof(buf)) {
                k->rd_ready = false;
                return;
            }
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            k->rd_ready = false;
            return;
        }
        if (n < 0 && errno == EINTR)
            continue;
        close_conn(k); /* EOF or an error: the client has what it needs */
        return;
    }
}

/* Moves a connection on as far as it can: parse and hand up requests, read
 * ahead while one is in hand, drain a lingering one. */
static void pump(struct conn *k) {
    if (k->pumping) {
        k->repump = true;
        return;
    }
    k->pumping = true;
    k->refs++;
    do {
        k->repump = false;
        while (k->state == ST_IDLE || k->state == ST_HEAD || k->state == ST_BODY) {
            if (k->in_off < k->in_len) {
                feed(k);
                continue;
            }
            if (!k->rd_ready)
                break;
            if (k->read_now >= READ_BUDGET) {
                /* A fast upload does not keep the loop to itself: the
                 * other connections (Redis replies among them) go first. */
                static const struct timeval now = {0, 0};
                evtimer_add(&k->resume, &now);
                break;
            }
            if (fill(k) <= 0)
                break;
        }
        if (k->state == ST_BUSY && k->rd_ready && !k->peer_eof)
            fill(k); /* a pipelined request, or the client's end (a long-poll's) */
        if (k->state == ST_LINGER && k->draining && k->rd_ready)
            drain(k);
    } while (k->repump && k->state != ST_CLOSED);
    k->pumping = false;
    unref(k);
}

static void on_resume(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    struct conn *k = arg;
    k->read_now = 0;
    pump(k);
}

static void on_read(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    struct conn *k = arg;
    k->read_now = 0;
    k->rd_ready = true;
    if (what & EV_CLOSED)
        k->rdhup = true;
    pump(k);
}

/* ---- writing ---------------------------------------------------------------- */

/* The answer in hand is written: the next request, or the close. */
static void answer_written(struct conn *k) {
    struct conn_server *s = k->s;
    void *user = k->user;
    k->user = NULL;
    k->answered = false;
    k->served++;
    if (user && s->cb.done)
        s->cb.done(k, user);
    if (k->state == ST_CLOSED)
        return;
    if (k->close_after || k->peer_eof || s->stopping) {
        if (k->in_off == k->in_len && !k->rd_ready) {
            close_conn(k);
            return;
        }
        /* The client sent more than we read: let it read our answer. */
        set_state(k, ST_LINGER);
        k->in_off = k->in_len = 0;
        flush(k);
        return;
    }
    parse_next(&k->ps);
    parse_trim(&k->ps, BODY_KEEP);
    set_state(k, ST_IDLE);
    k->since_ms = units_mono_ms();
    if (k->in_off < k->in_len) {
        set_state(k, ST_HEAD);
    }
    pump(k);
}

/* Writes what is pending. Returns false when the client is gone. */
static bool write_out(struct conn *k) {
    size_t before = evbuffer_get_length(k->out);
    while (evbuffer_get_length(k->out) > 0) {
        int n = evbuffer_write(k->out, k->fd);
        if (n > 0)
            continue;
        if (n == 0 || errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            break; /* the write event says when to go on */
        return false;
    }
    if (evbuffer_get_length(k->out) < before)
        k->write_ms = units_mono_ms();
    return true;
}

/* What follows a write, once nothing is pending: a lingering close starts
 * draining; an answer ends (done) or a streamed piece is out (flushed). Only
 * from the loop's own callbacks, never under a call of the layer above. */
static void written(struct conn *k) {
    if (evbuffer_get_length(k->out) > 0)
        return;
    if (k->state == ST_LINGER && !k->draining) {
        k->draining = true;
        shutdown(k->fd, SHUT_WR);
        k->since_ms = units_mono_ms();
        k->linger_until_ms = k->since_ms + CONN_LINGER_MAX_MS;
        k->rd_ready = true;
        pump(k);
    } else if (k->state == ST_BUSY && k->answered) {
        if (!k->stream_open) {
            answer_written(k);
        } else if (k->flush_due) {
            k->flush_due = false;
            if (k->user && k->s->cb.flushed)
                k->s->cb.flushed(k, k->user);
        }
    }
}

/* Writes what is pending, from the loop's own callbacks. */
static void flush(struct conn *k) {
    k->refs++;
    if (!write_out(k))
        close_conn(k);
    else
        written(k);
    unref(k);
}

/* Writes what is pending, under a call of the layer above: what follows
 * (done, flushed, gone) is told from the loop (the write event made active),
 * so that the caller never sees its exchange end under its feet. */
static void flush_later(struct conn *k) {
    bool ok = write_out(k);
    if (!ok)
        k->failed = true;
    if (!ok || evbuffer_get_length(k->out) == 0)
        event_active(&k->wr, EV_WRITE, 1);
}

static void on_write(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    struct conn *k = arg;
    if (k->failed) {
        k->refs++;
        close_conn(k);
        unref(k);
        return;
    }
    flush(k);
}

void conn_header(struct conn *k, const char *name, const char *value) {
    if (k->state != ST_BUSY || k->answered)
        return;
    size_t nl = strlen(name), vl = strlen(value);
    size_t need = k->hdr_len + nl + vl + 4;
    if (need > k->hdr_cap) {
        size_t cap = k->hdr_cap ? k->hdr_cap : 512;
        while (cap < need)
            cap *= 2;
        char *grown = realloc(k->hdr, cap);
        if (grown == NULL)
            return;
        k->hdr = grown;
        k->hdr_cap = cap;
    }
    char *p = k->hdr + k->hdr_len;
    memcpy(p, name, nl);
    p[nl] = ':';
    p[nl + 1] = ' ';
    memcpy(p + nl + 2, value, vl);
    p[nl + 2 + vl] = '\r';
    p[nl + 3 + vl] = '\n';
    k->hdr_len = need;
    if (strcasecmp(name, "Content-Length") == 0)
        k->hdr_clen = true;
    else if (strcasecmp(name, "Content-Type") == 0)
        k->hdr_ctype = true;
}

void conn_send(struct conn *k, int status, struct evbuffer *body, unsigned flags) {
    if (k->state != ST_BUSY || k->answered)
        return;
    struct conn_server *s = k->s;
    k->refs++;
    k->answered = true;
    size_t blen = body ? evbuffer_get_length(body) : 0;
    bool bodiless = status == 304 || status == 204 || status < 200;
    bool keep = k->keep && !s->stopping && !k->peer_eof;
    const char *connection = !keep ? "close" : k->ps.req.http_minor == 0 ? "keep-alive" : NULL;
    long long clen = bodiless || k->hdr_clen ? -1 : (long long)blen;
    refresh_date(s);
    size_t n =
        format_head(s, status, clen, !k->hdr_ctype && !bodiless, k->hdr, k->hdr_len, connection);
    k->hdr_len = 0;
    k->close_after = !keep;
    k->stream_open = (flags & CONN_STREAM) != 0;
    if (n == 0 || evbuffer_add(k->out, s->scratch, n) < 0) {
        k->failed = true;
        event_active(&k->wr, EV_WRITE, 1);
        unref(k);
        return;
    }
    if (body) {
        if ((flags & CONN_HEAD_ONLY) || bodiless)
            evbuffer_drain(body, blen);
        else
            evbuffer_add_buffer(k->out, body);
    }
    k->write_ms = units_mono_ms();
    flush_later(k);
    unref(k);
}

int conn_stream_add(struct conn *k, const void *data, size_t len) {
    if (k->state != ST_BUSY || !k->stream_open || k->failed)
        return -1;
    if (evbuffer_add(k->out, data, len) < 0) {
        conn_abort(k);
        return -1;
    }
    if (evbuffer_get_length(k->out) == len) /* not already waiting for the socket */
        k->write_ms = units_mono_ms();
    k->flush_due = true;
    flush_later(k);
    return 0;
}

void conn_stream_end(struct conn *k) {
    if (k->state != ST_BUSY || !k->stream_open)
        return;
    k->stream_open = false;
    k->flush_due = false;
    if (evbuffer_get_length(k->out) == 0)
        event_active(&k->wr, EV_WRITE, 1); /* done, from the loop */
}

void conn_abort(struct conn *k) {
    if (k->state == ST_CLOSED)
        return;
    k->failed = true; /* closed from the loop: gone follows there */
    event_active(&k->wr, EV_WRITE, 1);
}

/* ---- closing ---------------------------------------------------------------- */

static void close_conn(struct conn *k) {
    struct conn_server *s = k->s;
    if (k->state == ST_CLOSED)
        return;
    event_del(&k->rd);
    event_del(&k->wr);
    event_del(&k->resume);
    close(k->fd);
    k->fd = -1;
    if (k->prev)
        k->prev->next = k->next;
    else
        s->open_head = k->next;
    if (k->next)
        k->next->prev = k->prev;
    else
        s->open_tail = k->prev;
    struct conn **pp = &s->buckets[bucket_of(s, k->addr)];
    while (*pp && *pp != k)
        pp = &(*pp)->same_next;
    if (*pp)
        *pp = k->same_next;
    set_state(k, ST_CLOSED);
    s->nopen--;
    void *user = k->user;
    k->user = NULL;
    if (user && s->cb.gone)
        s->cb.gone(k, user);
    update_accept(s);
    if (k->refs == 0 && !k->pumping)
        recycle(k);
}

/* ---- deadlines ---------------------------------------------------------------- */

static void cut(struct conn *k, int status, const char *code, const char *message) {
    if (k->user || evbuffer_get_length(k->out) > 0) {
        close_conn(k);
        return;
    }
    refuse(k, status, code, message);
}

void conn_server_sweep(struct conn_server *s, long long now) {
    refresh_date(s);
    long long limit = s->lim.timeout_ms;
    struct conn *next;
    for (struct conn *k = s->open_head; k; k = next) {
        next = k->next;
        k->refs++;
        switch (k->state) {
        case ST_IDLE:
            if (now - k->since_ms >= limit)
                close_conn(k);
            break;
        case ST_HEAD:
            if (now - k->since_ms >= limit) {
                s->stats.head_timeouts++;
                cut(k, 408, "request_timeout",
                    "the request line and headers did not arrive within http.timeout");
            }
            break;
        case ST_BODY: {
            k->body_win[k->body_ticks % CONN_BODY_WINDOW] = k->body_now;
            k->body_now = 0;
            if (++k->body_ticks < CONN_BODY_WINDOW)
                break;
            uint64_t sum = 0;
            for (int i = 0; i < CONN_BODY_WINDOW; i++)
                sum += k->body_win[i];
            if (sum < (uint64_t)CONN_BODY_MIN_RATE * CONN_BODY_WINDOW) {
                s->stats.body_too_slow++;
                log_debug("%s: body under %d bytes/s over %d s: cut", k->peer, CONN_BODY_MIN_RATE,
                          CONN_BODY_WINDOW);
                cut(k, 408, "request_timeout", "the request body came slower than 1 KB/s");
            }
            break;
        }
        case ST_BUSY:
            if (evbuffer_get_length(k->out) > 0 && now - k->write_ms >= limit) {
                s->stats.write_timeouts++;
                log_debug("%s: did not read its answer within http.timeout: closed", k->peer);
                close_conn(k);
            }
            break;
        case ST_LINGER:
            if (!k->draining
                    ? now - k->write_ms >= limit
                    : now - k->since_ms >= CONN_LINGER_IDLE_MS || now >= k->linger_until_ms)
                close_conn(k);
            break;
        case ST_CLOSED:
            break;
        }
        /* next may have been closed above only if it was k: close_conn
         * closes nothing else. */
        unref(k);
    }
}

static void on_sweep(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    conn_server_sweep(arg, units_mono_ms());
}

/* ---- the server --------------------------------------------------------------- */

struct conn_server *conn_server_new(struct event_base *base, const struct conn_limits *limits,
                                    const struct conn_callbacks *cb) {
    struct conn_server *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->base = base;
    s->lim = *limits;
    s->cb = *cb;
    s->nbuckets = 256;
    while (s->nbuckets < 2 * s->lim.max_connections && s->nbuckets < (1u << 20))
        s->nbuckets *= 2;
    s->buckets = calloc(s->nbuckets, sizeof(*s->buckets));
    s->sweep = event_new(base, -1, EV_PERSIST, on_sweep, s);
    s->backoff = evtimer_new(base, on_backoff, s);
    struct timeval tv = {SWEEP_MS / 1000, (SWEEP_MS % 1000) * 1000};
    if (s->buckets == NULL || s->sweep == NULL || s->backoff == NULL ||
        event_add(s->sweep, &tv) < 0) {
        conn_server_free(s);
        return NULL;
    }
    if (getrandom(&s->rid_state, sizeof(s->rid_state), 0) != sizeof(s->rid_state))
        s->rid_state = (uint64_t)units_mono_ms() ^ ((uint64_t)getpid() << 32);
    refresh_date(s);
    return s;
}

int conn_server_listen(struct conn_server *s, int fd) {
    if (s->listener || s->stopping)
        return 0;
    s->listener = evconnlistener_new(s->base, on_accept, s, LEV_OPT_CLOSE_ON_EXEC, -1, fd);
    if (s->listener == NULL)
        return -1;
    evconnlistener_set_error_cb(s->listener, on_accept_error);
    s->listening = true;
    update_accept(s);
    return 0;
}

void conn_server_stop(struct conn_server *s) {
    s->stopping = true;
    if (s->listener) {
        evconnlistener_free(s->listener);
        s->listener = NULL;
    }
    struct conn *next;
    for (struct conn *k = s->open_head; k; k = next) {
        next = k->next;
        if (k->state == ST_IDLE)
            close_conn(k);
    }
}

size_t conn_server_open(const struct conn_server *s) {
    return s->nopen;
}

const struct conn_stats *conn_server_stats(const struct conn_server *s) {
    return &s->stats;
}

void conn_server_free(struct conn_server *s) {
    if (s == NULL)
        return;
    s->stopping = true;
    if (s->listener)
        evconnlistener_free(s->listener);
    s->listener = NULL;
    while (s->open_head) {
        struct conn *k = s->open_head;
        k->refs++; /* freed below, not recycled */
        close_conn(k);
        conn_destroy(k);
    }
    while (s->free_list) {
        struct conn *k = s->free_list;
        s->free_list = k->next;
        conn_destroy(k);
    }
    if (s->sweep)
        event_free(s->sweep);
    if (s->backoff)
        event_free(s->backoff);
    free(s->buckets);
    free(s->scratch);
    free(s);
}

/* ---- per connection --------------------------------------------------------- */

const struct parse_request *conn_request(const struct conn *k) {
    return &k->ps.req;
}

const char *conn_peer(const struct conn *k) {
    return k->peer;
}

void conn_set_user(struct conn *k, void *user) {
    k->user = user;
}
