/* segment.c — create, map and remove the shared segment. */
#include "segment.h"
#include "ratelimit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* Names the segment after the pid file so two instances never collide:
 * "/thumbnailed.<fnv1a of the path>". */
static void segment_name(char *buf, size_t n, const char *pid_file) {
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)pid_file; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    snprintf(buf, n, "/thumbnailed.%016llx", (unsigned long long)h);
}

int shm_segment_create(struct shm_segment *seg, const char *pid_file, size_t cache_size) {
    memset(seg, 0, sizeof(*seg));
    segment_name(seg->name, sizeof(seg->name), pid_file);
    shm_unlink(seg->name); /* a stale segment from a crashed run */

    size_t slots_off = (sizeof(struct shm_header) + 63) & ~(size_t)63;
    size_t rl_off = (slots_off + SHM_MAX_SLOTS * sizeof(struct shm_slot) + 63) & ~(size_t)63;
    size_t cache_off = (rl_off + sizeof(struct shm_ratelimit) + 4095) & ~(size_t)4095;
    size_t size = cache_off + cache_size;

    int fd = shm_open(seg->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    if (ftruncate(fd, (off_t)size) < 0) {
        int e = errno;
        close(fd);
        shm_unlink(seg->name);
        errno = e;
        return -1;
    }
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd);
    if (base == MAP_FAILED) {
        shm_unlink(seg->name);
        errno = e;
        return -1;
    }
    seg->hdr = base;
    seg->size = size;
    seg->hdr->magic = SHM_MAGIC;
    seg->hdr->version = SHM_VERSION;
    seg->hdr->size = size;
    seg->hdr->slots_off = slots_off;
    seg->hdr->slot_count = SHM_MAX_SLOTS;
    seg->hdr->ratelimit_off = rl_off;
    seg->hdr->cache_off = cache_off;
    if (ratelimit_init(shm_segment_ratelimit(seg)) < 0) {
        shm_segment_destroy(seg);
        errno = EINVAL;
        return -1;
    }
    seg->hdr->cache_size = cache_size;
    return 0;
}

void shm_segment_destroy(struct shm_segment *seg) {
    if (seg->hdr) {
        munmap(seg->hdr, seg->size);
        shm_unlink(seg->name);
        seg->hdr = NULL;
    }
}

struct shm_slot *shm_segment_slot(struct shm_segment *seg, int i) {
    if (seg == NULL || seg->hdr == NULL || i < 0 || (uint32_t)i >= seg->hdr->slot_count)
        return NULL;
    return (struct shm_slot *)((char *)seg->hdr + seg->hdr->slots_off) + i;
}

struct shm_ratelimit *shm_segment_ratelimit(struct shm_segment *seg) {
    return (struct shm_ratelimit *)((char *)seg->hdr + seg->hdr->ratelimit_off);
}

void *shm_segment_cache_area(struct shm_segment *seg) {
    return (char *)seg->hdr + seg->hdr->cache_off;
}
