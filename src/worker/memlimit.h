/* memlimit.h — worker.max_memory: a worker's address space (RLIMIT_AS) bounded to
 * what it maps once initialised plus max_memory, so that a source too big to
 * decode fails its allocation, and its job, instead of exhausting the machine. */
#ifndef TH_MEMLIMIT_H
#define TH_MEMLIMIT_H

#include <stdint.h>

/* The size of this process's address space now (VmSize) in bytes, or -1 when
 * /proc/self/statm cannot be read. */
int64_t memlimit_address_space(void);

/* Bounds this process: caps glibc malloc at one arena (each further arena
 * reserves 64 MiB of address space that would count against the limit while
 * holding next to nothing) and fixes its mmap and trim thresholds at 128 MiB
 * (a quarter of max_bytes when that is less), so that the buffers one job
 * frees serve the next without page faults; then sets the soft RLIMIT_AS to the current address
 * space plus max_bytes (no higher than the hard limit; max_bytes alone when
 * the current size is unknown). Call once, after the libraries are initialised
 * and before any job. Logs what it did. Returns the limit in bytes, 0 when
 * none was set because the build uses AddressSanitizer (its shadow memory
 * needs terabytes of address space), or -1 when setrlimit failed. */
int64_t memlimit_apply(int64_t max_bytes);

/* Gives the freed memory memlimit_apply's thresholds keep back to the system
 * (malloc_trim), for a worker that has found no job: what the last job left
 * on the heap then costs nothing while the worker idles, and the next busy
 * spell page-faults it once. Returns the bytes of resident memory released
 * (from VmRSS before and after), 0 when none or the build has no trim. */
int64_t memlimit_release(void);

#endif
