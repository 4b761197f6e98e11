/* units.h — the one parser for sizes ("20M"), counts ("50M") and durations ("200ms", "24h"). */
#ifndef TH_UNITS_H
#define TH_UNITS_H

#include <stdint.h>

/* Bytes with an optional K, M, G or T suffix (powers of 1024). Returns 0, or -1
 * on bad syntax or overflow. */
int units_parse_size(const char *s, uint64_t *out);

/* A count with an optional K, M or G suffix (powers of 1000), e.g. pixels. */
int units_parse_count(const char *s, uint64_t *out);

/* Milliseconds from a number with a suffix ms, s, m, h or d; a bare number is
 * seconds. Returns 0, or -1 on bad syntax or overflow. */
int units_parse_duration(const char *s, uint64_t *out_ms);

/* Milliseconds on CLOCK_MONOTONIC: for timeouts and intervals, never dates. */
int64_t units_mono_ms(void);

/* Milliseconds since the epoch (CLOCK_REALTIME), as Redis TIME counts them:
 * for dates shown or shared with other machines. */
int64_t units_wall_ms(void);

#endif
