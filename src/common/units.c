/* units.c — suffix tables applied by one parsing routine. */
#include "units.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct suffix {
    const char *name;
    uint64_t factor;
};

static const struct suffix size_suffixes[] = {
    {"", 1}, {"K", 1ULL << 10}, {"M", 1ULL << 20}, {"G", 1ULL << 30}, {"T", 1ULL << 40}, {NULL, 0},
};

static const struct suffix count_suffixes[] = {
    {"", 1}, {"K", 1000ULL}, {"M", 1000000ULL}, {"G", 1000000000ULL}, {NULL, 0},
};

static const struct suffix duration_suffixes[] = {
    {"", 1000},     {"ms", 1},          {"s", 1000}, {"m", 60 * 1000},
    {"h", 3600000}, {"d", 86400000ULL}, {NULL, 0},
};

/* Parses "<digits><suffix>" with surrounding blanks allowed; the suffix is
 * matched case-insensitively against the table. */
static int parse_with(const char *s, const struct suffix *table, uint64_t *out) {
    if (s == NULL)
        return -1;
    while (isspace((unsigned char)*s))
        s++;
    if (!isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE)
        return -1;
    while (*end == ' ' || *end == '\t')
        end++;
    size_t len = strlen(end);
    while (len > 0 && isspace((unsigned char)end[len - 1]))
        len--;
    for (const struct suffix *sx = table; sx->name != NULL; sx++) {
        if (strlen(sx->name) == len && strncasecmp(end, sx->name, len) == 0) {
            if (v != 0 && sx->factor > UINT64_MAX / v)
                return -1;
            *out = v * sx->factor;
            return 0;
        }
    }
    return -1;
}

int units_parse_size(const char *s, uint64_t *out) {
    return parse_with(s, size_suffixes, out);
}

int units_parse_count(const char *s, uint64_t *out) {
    return parse_with(s, count_suffixes, out);
}

int units_parse_duration(const char *s, uint64_t *out_ms) {
    return parse_with(s, duration_suffixes, out_ms);
}

static int64_t clock_ms(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t units_mono_ms(void) {
    return clock_ms(CLOCK_MONOTONIC);
}

int64_t units_wall_ms(void) {
    return clock_ms(CLOCK_REALTIME);
}
