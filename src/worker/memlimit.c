/* memlimit.c — the worker's address-space limit (worker.max_memory). */
#include "memlimit.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define MEMLIMIT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEMLIMIT_ASAN 1
#endif
#endif

#define MIB (1024 * 1024)
/* The most freed memory the worker keeps for the next job (see memlimit_apply). */
#define MEMLIMIT_MALLOC_KEEP (128 * MIB)

/* This process's /proc/self/statm: its size (VmSize) and resident set
 * (VmRSS) in bytes, each -1 when the file cannot be read. */
static void statm(int64_t *size, int64_t *resident) {
    *size = *resident = -1;
    FILE *fp = fopen("/proc/self/statm", "re");
    if (fp == NULL)
        return;
    unsigned long long v[2] = {0, 0};
    int n = fscanf(fp, "%llu %llu", &v[0], &v[1]);
    fclose(fp);
    long page = sysconf(_SC_PAGESIZE);
    if (n != 2 || page <= 0)
        return;
    *size = (int64_t)v[0] * page;
    *resident = (int64_t)v[1] * page;
}

int64_t memlimit_address_space(void) {
    int64_t size, resident;
    statm(&size, &resident);
    return size;
}

int64_t memlimit_release(void) {
#if defined(__GLIBC__) && !defined(MEMLIMIT_ASAN)
    int64_t size, before, after;
    statm(&size, &before);
    malloc_trim(0);
    statm(&size, &after);
    return before > 0 && after >= 0 && before > after ? before - after : 0;
#else
    return 0;
#endif
}

int64_t memlimit_apply(int64_t max_bytes) {
#ifdef MEMLIMIT_ASAN
    log_warn("worker: max_memory (%" PRId64 " MiB) is not enforced: built with "
             "AddressSanitizer, whose shadow memory an address-space limit would break",
             max_bytes / MIB);
    return 0;
#else
#if defined(__GLIBC__) && defined(M_ARENA_MAX)
    mallopt(M_ARENA_MAX, 1);
    /* The decode buffers of one image are reused by the next: with glibc's
     * dynamic thresholds they are mapped and unmapped, or trimmed off the
     * heap, and page-faulted afresh on many images (the progressive JPEGs of
     * bench/RESULTS.md ran 40 % slower so). Kept up to the threshold; a
     * larger allocation is still mapped and returned when freed. */
    int64_t threshold = max_bytes / 4 < MEMLIMIT_MALLOC_KEEP ? max_bytes / 4 : MEMLIMIT_MALLOC_KEEP;
    if (threshold > 0 &&
        (!mallopt(M_MMAP_THRESHOLD, (int)threshold) || !mallopt(M_TRIM_THRESHOLD, (int)threshold)))
        log_warn("worker: glibc refused an mmap and trim threshold of %" PRId64 " MiB",
                 threshold / MIB);
#endif
    int64_t base = memlimit_address_space();
    int64_t limit = base > 0 ? base + max_bytes : max_bytes;
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) < 0) {
        log_error("worker: getrlimit(RLIMIT_AS): %s", strerror(errno));
        return -1;
    }
    if (rl.rlim_max != RLIM_INFINITY && (rlim_t)limit > rl.rlim_max) {
        log_warn("worker: max_memory would put the address-space limit at %" PRId64
                 " MiB, above the hard limit of %llu MiB: using the hard limit",
                 limit / MIB, (unsigned long long)(rl.rlim_max / MIB));
        limit = (int64_t)rl.rlim_max;
    }
    rl.rlim_cur = (rlim_t)limit;
    if (setrlimit(RLIMIT_AS, &rl) < 0) {
        log_error("worker: setrlimit(RLIMIT_AS, %" PRId64 " MiB): %s", limit / MIB,
                  strerror(errno));
        return -1;
    }
    if (base > 0)
        log_info("worker: address space limited to %" PRId64 " MiB (%" PRId64
                 " MiB mapped at start + max_memory %" PRId64 " MiB)",
                 limit / MIB, base / MIB, max_bytes / MIB);
    else
        log_warn("worker: address space limited to max_memory, %" PRId64
                 " MiB (the size at start is unknown: /proc/self/statm unreadable)",
                 limit / MIB);
    return limit;
#endif
}
