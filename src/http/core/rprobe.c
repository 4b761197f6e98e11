/* rprobe.c — the PING probe's bookkeeping (rprobe.h). */
#include "rprobe.h"

void rprobe_init(struct rprobe *p) {
    p->sent_ms = 0;
    p->pong_ms = 0;
    p->rtt_ms = -1;
}

bool rprobe_due(const struct rprobe *p) {
    return p->sent_ms == 0;
}

void rprobe_sent(struct rprobe *p, int64_t now) {
    p->sent_ms = now > 0 ? now : 1;
}

void rprobe_reply(struct rprobe *p, int64_t now, bool pong) {
    if (p->sent_ms == 0)
        return;
    if (pong) {
        p->rtt_ms = now - p->sent_ms;
        p->pong_ms = now;
    }
    p->sent_ms = 0;
}

void rprobe_lost(struct rprobe *p) {
    p->sent_ms = 0;
}

void rprobe_ready(struct rprobe *p, int64_t now, int64_t since) {
    p->sent_ms = 0;
    p->rtt_ms = since > 0 && since <= now ? now - since : 0;
    p->pong_ms = now > 0 ? now : 1;
}

bool rprobe_answering(const struct rprobe *p, int64_t now, int64_t *silent_ms) {
    int64_t silent = p->pong_ms ? now - p->pong_ms : -1;
    bool stuck = p->sent_ms != 0 && now - p->sent_ms > RPROBE_WINDOW_MS;
    if (silent_ms)
        *silent_ms = silent;
    return p->pong_ms != 0 && silent <= RPROBE_WINDOW_MS && !stuck;
}
