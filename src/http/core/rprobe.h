/* rprobe.h — whether Redis answers, from a PING sent now and then on a
 * connection: the bookkeeping only (no I/O, the caller passes the time), so
 * that "answering" means one thing wherever it is asked (rasync.c, /readyz). */
#ifndef TH_HTTP_RPROBE_H
#define TH_HTTP_RPROBE_H

#include <stdbool.h>
#include <stdint.h>

#define RPROBE_INTERVAL_MS 500  /* a PING this often, while none is outstanding */
#define RPROBE_WINDOW_MS   1000 /* answering: a PONG this recent, no PING older outstanding */

/* One connection's probe; times in CLOCK_MONOTONIC ms (units_mono_ms). */
struct rprobe {
    int64_t sent_ms; /* when the PING outstanding was sent; 0: none is */
    int64_t pong_ms; /* when the last PONG came (or the connection became ready); 0: never */
    int64_t rtt_ms;  /* the last PING's round trip; -1: none measured yet */
};

/* A probe that has seen nothing. */
void rprobe_init(struct rprobe *p);

/* Whether a PING may be sent now: none is outstanding. */
bool rprobe_due(const struct rprobe *p);

/* A PING was sent at now. */
void rprobe_sent(struct rprobe *p, int64_t now);

/* The reply to the PING outstanding came at now: pong true for PONG, false
 * for an error reply (Redis busy, loading: not answering commands). */
void rprobe_reply(struct rprobe *p, int64_t now, bool pong);

/* The PING's reply will not come (the connection went away). */
void rprobe_lost(struct rprobe *p);

/* The connection just became ready at now: its handshake, begun at since,
 * ended with a PONG (its round trip until a PING of the probe's is answered). */
void rprobe_ready(struct rprobe *p, int64_t now, int64_t since);

/* Whether Redis answers: a PONG within the last RPROBE_WINDOW_MS and no PING
 * outstanding for longer. *silent_ms (when not NULL) gets the age of the last
 * PONG, -1 when none came. */
bool rprobe_answering(const struct rprobe *p, int64_t now, int64_t *silent_ms);

#endif
