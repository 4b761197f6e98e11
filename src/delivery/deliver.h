/* deliver.h — the delivery child: sends each finished job's callback (a signed
 * POST of its job document, Standard Webhooks) and e-mail (the thumbnail
 * attached, libcurl SMTP) from their own reliable queue in Redis
 * ({p}:wh:ready -> {p}:wh:proc:<wid>, retries on {p}:wh:delayed, the exhausted
 * on {p}:wh:dead; docs/ARCHITECTURE.md §6). Many deliveries are in flight at once (curl
 * multi), so a slow receiver holds neither a thumbnail worker nor the other
 * deliveries; a failed delivery never re-runs the thumbnail. */
#ifndef TH_DELIVER_H
#define TH_DELIVER_H

#include "child.h"
#include "config.h"
#include "segment.h"

#include <stdbool.h>
#include <stdint.h>

/* Runs the delivery child until SIGQUIT/SIGTERM, then finishes what is in
 * flight (each transfer is bounded by callback.timeout). Returns the process
 * exit status: 0 on a clean stop, 2 on a fatal environment error. */
int deliver_main(const struct child_args *args);

#define DELIVER_SCHEDULE_MAX 32

/* Parses callback.schedule ("5s 5m 30m ...") into delays in ms. Returns how
 * many, or -1 when an entry is not a duration or there are too many. */
int deliver_schedule_parse(const char *text, int64_t *delays, int max);

/* The outcome of one attempt, as deliver.lua records it. */
enum deliver_outcome { DELIVER_DELIVERED, DELIVER_RETRY, DELIVER_FAILED, DELIVER_STOPPED };

/* What to do after an attempt that did not succeed: the attempt just made is
 * number attempt (1 = the first). While the schedule has a delay for it,
 * DELIVER_RETRY with *delay_ms = that delay scaled by jitter (0 <= jitter < 1
 * gives [0.8, 1.2)), and no sooner than retry_after_ms (a receiver's
 * Retry-After; 0 = none, capped at one day); else DELIVER_FAILED. */
enum deliver_outcome deliver_next(int attempt, const int64_t *delays, int ndelays,
                                  int64_t retry_after_ms, double jitter, int64_t *delay_ms);

/* The delay a Retry-After header value asks for, in ms (delta-seconds or an
 * HTTP date, against now_s); 0 when absent or unparsable. */
int64_t deliver_retry_after(const char *value, int64_t now_s);

#endif
