/* curlev.c — curl's multi_socket API on libevent (curlev.h): curl says which
 * sockets to watch (on_curl_socket) and when to call it back (on_curl_timer);
 * the loop's events call curl_multi_socket_action, and after each call the
 * transfers curl has finished are handed to their done. */
#include "curlev.h"

#include "log.h"

#include <stdbool.h>
#include <stdlib.h>

/* A transfer in flight: what to call when it ends. */
struct xfer {
    struct xfer *prev, *next;
    CURL *easy;
    curlev_done_fn done;
    void *arg;
};

/* A socket curl asked us to watch; curl keeps the pointer (curl_multi_assign)
 * and hands it back with every change of interest. */
struct sock {
    struct sock *prev, *next;
    struct curlev *m;
    int what;         /* the CURL_POLL_* the event is set for */
    struct event *ev; /* EV_PERSIST, EV_READ and/or EV_WRITE as curl asks */
};

struct curlev {
    struct event_base *base;
    CURLM *multi;        /* NULL once curlev_free has run */
    struct event *timer; /* curl's timeout */
    struct xfer *xfers;  /* in flight, searched by handle (a few tens at most) */
    struct sock *socks;  /* every socket watched: freed by curlev_free if curl did not */
    unsigned running;    /* the length of xfers */
    int dispatching;     /* inside finish, calling a done */
    bool freed;          /* curlev_free ran inside a done: finish frees m on return */
};

static void xfer_link(struct curlev *m, struct xfer *x) {
    x->prev = NULL;
    x->next = m->xfers;
    if (m->xfers)
        m->xfers->prev = x;
    m->xfers = x;
    m->running++;
}

static void xfer_unlink(struct curlev *m, struct xfer *x) {
    if (x->prev)
        x->prev->next = x->next;
    else
        m->xfers = x->next;
    if (x->next)
        x->next->prev = x->prev;
    m->running--;
}

static struct xfer *xfer_find(const struct curlev *m, const CURL *easy) {
    for (struct xfer *x = m->xfers; x; x = x->next)
        if (x->easy == easy)
            return x;
    return NULL;
}

static void sock_free(struct curlev *m, struct sock *s) {
    if (s->prev)
        s->prev->next = s->next;
    else
        m->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    event_free(s->ev); /* also when s->ev is the event running now: libevent allows it */
    free(s);
}

/* Hands every transfer curl has finished to its done. Each leaves the multi
 * handle and the table before its done runs, so that done may reuse or free
 * its handle, add or cancel others (a canceled handle's pending message goes
 * with it: curl_multi_remove_handle drops it), or free m. The last thing an
 * event callback does: m may be gone when this returns. */
static void finish(struct curlev *m) {
    CURLMsg *msg;
    int left;
    m->dispatching++;
    while (!m->freed && (msg = curl_multi_info_read(m->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        /* msg is curl's and dies with curl_multi_remove_handle: copy first. */
        CURL *easy = msg->easy_handle;
        CURLcode result = msg->data.result;
        struct xfer *x = xfer_find(m, easy);
        if (!x) {
            /* Cannot be: only curlev_add adds, and removing a handle drops
             * its message. Its easy may be freed: leave it alone. */
            log_error("curlev: a finished transfer that is not in the table");
            continue;
        }
        curl_multi_remove_handle(m->multi, easy);
        xfer_unlink(m, x);
        curlev_done_fn done = x->done;
        void *arg = x->arg;
        free(x);
        done(easy, result, arg);
    }
    if (--m->dispatching == 0 && m->freed)
        free(m);
}

static void act(struct curlev *m, curl_socket_t fd, int ev_bitmask) {
    int still;
    CURLMcode rc = curl_multi_socket_action(m->multi, fd, ev_bitmask, &still);
    if (rc != CURLM_OK)
        log_error("curlev: curl_multi_socket_action: %s", curl_multi_strerror(rc));
    finish(m);
}

static void on_socket(evutil_socket_t fd, short events, void *arg) {
    struct sock *s = arg;
    struct curlev *m = s->m; /* s may be freed by the action (CURL_POLL_REMOVE) */
    int bits =
        (events & EV_READ ? CURL_CSELECT_IN : 0) | (events & EV_WRITE ? CURL_CSELECT_OUT : 0);
    act(m, fd, bits);
}

static void on_timer(evutil_socket_t fd, short events, void *arg) {
    (void)fd;
    (void)events;
    act(arg, CURL_SOCKET_TIMEOUT, 0);
}

/* CURLMOPT_SOCKETFUNCTION: watch fd for what, or stop watching it. Called
 * from inside curl (socket_action, add/remove_handle, cleanup): it changes
 * events only and never calls back into curl but for curl_multi_assign. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
    (void)easy;
    struct curlev *m = userp;
    struct sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        /* curl forgets the socket (and its pointer) after this call: before
         * it closes it, so event_del still sees an open descriptor. */
        if (s)
            sock_free(m, s);
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s || !(s->ev = event_new(m->base, fd, 0, on_socket, s))) {
            log_error("curlev: out of memory for a socket's event");
            free(s);
            return -1;
        }
        s->m = m;
        s->what = -1; /* set below */
        s->next = m->socks;
        if (m->socks)
            m->socks->prev = s;
        m->socks = s;
        if (curl_multi_assign(m->multi, fd, s) != CURLM_OK) {
            log_error("curlev: curl_multi_assign failed");
            sock_free(m, s);
            return -1;
        }
    }
    if (s->what == what)
        return 0;
    short kinds = (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    /* event_assign wants an event that is not pending. */
    event_del(s->ev);
    s->what = what;
    if (!kinds)
        return 0; /* CURL_POLL_NONE: known, not watched */
    event_assign(s->ev, m->base, fd, kinds | EV_PERSIST, on_socket, s);
    if (event_add(s->ev, NULL) < 0) {
        log_error("curlev: event_add for socket %d failed", (int)fd);
        return -1;
    }
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: call curl back in timeout_ms (0: from the loop's
 * next turn, never from here: this runs inside curl), -1: not at all. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
    (void)multi;
    struct curlev *m = userp;
    if (timeout_ms < 0) {
        evtimer_del(m->timer);
        return 0;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    if (evtimer_add(m->timer, &tv) < 0) {
        log_error("curlev: evtimer_add failed");
        return -1;
    }
    return 0;
}

struct curlev *curlev_new(struct event_base *base) {
    struct curlev *m = calloc(1, sizeof *m);
    if (!m || !(m->multi = curl_multi_init()) || !(m->timer = evtimer_new(base, on_timer, m))) {
        log_error("curlev: out of memory");
        goto fail;
    }
    m->base = base;
    if (curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK ||
        curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m) != CURLM_OK ||
        curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK ||
        curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m) != CURLM_OK) {
        log_error("curlev: curl_multi_setopt failed");
        goto fail;
    }
    return m;
fail:
    if (m) {
        if (m->timer)
            event_free(m->timer);
        if (m->multi)
            curl_multi_cleanup(m->multi);
        free(m);
    }
    return NULL;
}

void curlev_free(struct curlev *m) {
    if (!m || m->freed)
        return;
    /* Each removal may call on_curl_socket (REMOVE) and on_curl_timer: the
     * events stay until curl is done with them. */
    while (m->xfers) {
        struct xfer *x = m->xfers;
        xfer_unlink(m, x);
        curl_multi_remove_handle(m->multi, x->easy);
        free(x);
    }
    curl_multi_cleanup(m->multi);
    m->multi = NULL;
    /* Sockets curl never said REMOVE for (its cleanup may just forget them). */
    while (m->socks)
        sock_free(m, m->socks);
    event_free(m->timer);
    m->timer = NULL;
    if (m->dispatching) {
        m->freed = true; /* called from a done: finish frees m when it returns */
        return;
    }
    free(m);
}

int curlev_add(struct curlev *m, CURL *easy, curlev_done_fn done, void *arg) {
    if (!m || m->freed || !easy || !done) {
        log_error("curlev_add: no curlev, handle or done");
        return -1;
    }
    struct xfer *x = malloc(sizeof *x);
    if (!x) {
        log_error("curlev: out of memory for a transfer");
        return -1;
    }
    x->easy = easy;
    x->done = done;
    x->arg = arg;
    /* Calls on_curl_timer (0: the transfer starts on the loop's next turn),
     * never a done: those come only from finish. */
    CURLMcode rc = curl_multi_add_handle(m->multi, easy);
    if (rc != CURLM_OK) {
        log_error("curlev: curl_multi_add_handle: %s", curl_multi_strerror(rc));
        free(x);
        return -1;
    }
    xfer_link(m, x);
    return 0;
}

void curlev_cancel(struct curlev *m, CURL *easy) {
    if (!m || m->freed || !easy)
        return;
    struct xfer *x = xfer_find(m, easy);
    if (!x)
        return;
    CURLMcode rc = curl_multi_remove_handle(m->multi, easy);
    if (rc != CURLM_OK) {
        log_error("curlev: curl_multi_remove_handle: %s; the transfer goes on",
                  curl_multi_strerror(rc));
        return;
    }
    xfer_unlink(m, x);
    free(x);
}

unsigned curlev_running(const struct curlev *m) {
    return m ? m->running : 0;
}
