/* proctitle.h — the whole process title that ps shows (its args column, from
 * /proc/PID/cmdline), as nginx sets it (ngx_setproctitle): argv's strings and
 * the environment are moved to the heap once, at start, and the memory they
 * held, argv's area and the environment's after it, holds the title. */
#ifndef TH_COMMON_PROCTITLE_H
#define TH_COMMON_PROCTITLE_H

#include <stddef.h>

/* Moves argv's strings (argv[i] then points at a copy) and environ (a copy of
 * the array and its strings) to the heap and takes their old area for the
 * title; glibc's program_invocation_name follows the copy. Call it first in
 * main, before anything keeps a pointer into argv (getopt's optarg). The
 * copies live as long as the process. Returns 0, or -1 out of memory (the
 * title then stays as it was). */
int proctitle_init(int argc, char **argv);

/* Sets the title to title, cut to the room there is; the rest of the area
 * is cleared. Does nothing before proctitle_init. */
void proctitle_set(const char *title);

/* The room for a title, its terminating NUL included; 0 before proctitle_init. */
size_t proctitle_room(void);

/* Writes prefix followed by argv[1..argc-1], each after a space, into buf
 * (at most n bytes, always terminated). Returns the length it wanted (as
 * snprintf), so a return >= n means it was cut. */
size_t proctitle_join(char *buf, size_t n, const char *prefix, int argc, char *const *argv);

#endif
