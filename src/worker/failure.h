/* failure.h — why a job failed: a stable error code (docs/API.md §10.2, docs/ARCHITECTURE.md §5)
 * with a human message, and the one table that says which codes are worth a retry. */
#ifndef TH_FAILURE_H
#define TH_FAILURE_H

#include <stdbool.h>

#define FAILURE_CODE_MAX    48
#define FAILURE_MESSAGE_MAX 512

/* A failure as stored in the job's err_code / err_msg. code is empty while
 * nothing has failed. */
struct failure {
    char code[FAILURE_CODE_MAX];
    char message[FAILURE_MESSAGE_MAX];
};

/* Sets code and the printf-formatted message (truncated to fit). Returns -1 so
 * callers can `return failure_set(...)`. */
int failure_set(struct failure *f, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Whether a job failing with code may succeed on another attempt (network
 * trouble, 5xx, our own resource problems) or is permanent (bad input, 4xx,
 * too large, wrong type). Unknown codes count as transient: the attempt limit
 * still ends them. */
bool failure_is_transient(const char *code);

#endif
