/* rasync.h — the http child's Redis connections: hiredis async on the
 * child's event loop, reconnecting with capped backoff, scripts by EVALSHA
 * with one EVAL retry on NOSCRIPT, and a watchdog that drops a connection
 * that stops answering. A second kind of client only subscribes to a few
 * channels (the long-poll completions, the cache's change notices), and says
 * when it is subscribed. */
#ifndef TH_HTTP_RASYNC_H
#define TH_HTTP_RASYNC_H

#include "config.h"
#include "queue.h"
#include "rconn.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

struct rasync;

/* The rate at which a big command is assumed to reach Redis and be taken in
 * at the worst (20 MB/s): a reply's timeout is redis.connect_timeout plus the
 * bytes still on their way at this rate, and bytes moving in either
 * direction also count as progress. */
#define RASYNC_BULK_BYTES_PER_MS 20000

/* Called once per command with its reply, or with NULL when the connection
 * went away (or stopped answering) before the reply came. The reply is freed
 * by hiredis when the callback returns. */
typedef void (*rasync_cb)(redisReply *reply, void *arg);

/* What the caller keeps alive, usually inside its own per-request state, until
 * the callback has run; no allocation per command. One op may carry several
 * pipelined plain commands; a script op carries one script call. */
struct rasync_op {
    rasync_cb cb;
    void *arg;
    /* scripts only: the arguments, kept to resend with EVAL on NOSCRIPT */
    enum queue_script script;
    int nkeys, nargs;
    const char **argv;
    const size_t *lens;
    bool retried;
    bool cancelled; /* set by the caller: do not resend, just report */
    bool is_script; /* set by rasync_script */
};

/* Creates the client and starts connecting (to t, with cfg's connect timeout).
 * Returns NULL on allocation failure. */
struct rasync *rasync_new(struct event_base *base, const struct config *cfg,
                          const struct rconn_target *t);

/* Fails every pending command (callbacks get NULL), then frees the client. */
void rasync_free(struct rasync *r);

/* Calls fn(arg) each time the client becomes ready (connected and past its
 * handshake), from the event loop. */
void rasync_set_on_ready(struct rasync *r, void (*fn)(void *arg), void *arg);

/* Whether commands can be sent now. */
bool rasync_connected(const struct rasync *r);

/* Starts r's probe (a command client): a PING every RPROBE_INTERVAL_MS while
 * none is outstanding (rprobe.h). Returns 0, or -1 (a subscriber, already
 * started, or out of memory). */
int rasync_probe_start(struct rasync *r);

/* Whether Redis answers r's probe (rprobe_answering): connected, a PONG
 * within RPROBE_WINDOW_MS, no PING outstanding longer. *rtt_ms gets the last
 * round trip (-1: none yet), *silent_ms the age of the last PONG (-1: none);
 * either may be NULL. Without a probe started only the handshake's PING counts. */
bool rasync_answering(const struct rasync *r, long *rtt_ms, long *silent_ms);

/* The server r is connected to ("host:port", or the socket's path) into buf;
 * "" while disconnected. */
void rasync_peer(const struct rasync *r, char *buf, size_t n);

/* Sends a command (argv with lengths; lens NULL means strlen). The reply goes
 * to op->cb(reply, op->arg). Returns 0, or -1 when not connected (no callback
 * will come). */
int rasync_command(struct rasync *r, struct rasync_op *op, int argc, const char **argv,
                   const size_t *lens);

/* Runs script op->script with op->nkeys keys then op->nargs arguments from
 * op->argv (lengths op->lens, or NULL for strlen): EVALSHA, and once more with
 * EVAL when Redis answers NOSCRIPT. op and its arguments must stay valid until
 * op->cb has run. Returns 0, or -1 when not connected. */
int rasync_script(struct rasync *r, struct rasync_op *op);

/* The most channels one subscriber takes. */
#define RASYNC_MAX_CHANNELS 4

/* A message published on the subscriber's channel number channel (its index
 * in rasync_new_subscriber's list); payload is not NUL-terminated by contract,
 * though hiredis ends it with one. */
typedef void (*rasync_message_cb)(int channel, const char *payload, size_t len, void *arg);

/* The subscription is in place (true: every message published from now on
 * will come) or lost (false: messages may be missed until it is back). */
typedef void (*rasync_state_cb)(bool subscribed, void *arg);

/* Creates a client that, once connected, SUBSCRIBEs to the nchannels (1 to
 * RASYNC_MAX_CHANNELS) channels (copied) in one command and passes each
 * message to on_message; reconnects and subscribes again like the command
 * client. on_state is called on every change (never from rasync_free): true
 * once every channel is confirmed, false when the connection is lost. Commands
 * cannot be sent on it. Returns NULL on allocation failure or a bad count. */
struct rasync *rasync_new_subscriber(struct event_base *base, const struct config *cfg,
                                     const struct rconn_target *t, const char *const *channels,
                                     int nchannels, rasync_message_cb on_message,
                                     rasync_state_cb on_state, void *arg);

/* Whether a subscriber's subscription (every channel) is in place. */
bool rasync_subscribed(const struct rasync *r);

#endif
