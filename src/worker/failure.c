/* failure.c — error codes of the worker pipeline and their retry classification. */
#include "failure.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int failure_set(struct failure *f, const char *code, const char *fmt, ...) {
    snprintf(f->code, sizeof(f->code), "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->message, sizeof(f->message), fmt, ap);
    va_end(ap);
    return -1;
}

/* First match wins; an entry ending in '_' or a digit prefix matches by prefix. */
static const struct {
    const char *code;
    bool prefix;
    bool transient;
} classes[] = {
    {"fetch_timeout", false, true},
    {"fetch_failed", false, true}, /* DNS, connect, TLS, reset */
    {"fetch_http_408", false, true},
    {"fetch_http_425", false, true},
    {"fetch_http_429", false, true},
    {"fetch_http_5", true, true},
    {"fetch_http_", true, false}, /* every other 4xx */
    {"fetch_too_large", false, false},
    {"fetch_blocked_address", false, false},
    {"fetch_too_many_redirects", false, false},
    {"fetch_blocked_host", false, false}, /* fetch.deny_hosts */
    {"fetch_bad_redirect", false, false}, /* Location missing, unparsable, not http(s) */
    {"source_missing", false, false},
    {"invalid_job", false, false},
    {"unsupported_type", false, false},
    {"too_many_pixels", false, false},
    {"too_many_frames", false, false},
    {"output_too_large", false, false}, /* image.max_output_pixels: the request, not luck */
    {"result_too_large", false, false}, /* image.max_result_bytes: the same bytes next time */
    {"decode_failed", false, false},
    {"encode_failed", false, true},  /* not the input's fault: memory, encoder */
    {"internal_error", false, true}, /* out of memory and the like */
    {"job_timeout", false, true},    /* set by the master; release.lua fails the second for good */
    {"worker_crashed", false, true},
    {"store_unavailable", false, true}, /* storage.backend = s3: the store did not take or give */
};

bool failure_is_transient(const char *code) {
    for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
        size_t n = strlen(classes[i].code);
        if (classes[i].prefix ? strncmp(code, classes[i].code, n) == 0
                              : strcmp(code, classes[i].code) == 0)
            return classes[i].transient;
    }
    return true;
}
