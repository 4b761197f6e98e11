/* log.h — one logger per process: level filter, stderr/syslog/file target, reopen on signal. */
#ifndef TH_LOG_H
#define TH_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

/* Sets the process name shown in each line, the minimum level and the target
 * ("stderr", "syslog" or "file:PATH"). Returns 0, or -1 when the file cannot be
 * opened (logging then goes to stderr). */
int log_init(const char *procname, enum log_level level, const char *target);

/* Changes the process name shown in each line (after fork: it also forgets
 * the parent's repeats and lost-line counter). */
void log_set_procname(const char *procname);

/* Changes the minimum level. */
void log_set_level(enum log_level level);

/* While on, errors are also written to stderr whatever the target: a detached
 * daemon's start-up errors reach whoever started it. */
void log_errors_to_stderr(bool on);

/* Reopens a file target (after rotation). Returns 0 or -1. */
int log_reopen(void);

/* Writes one line at level. A warning or error whose text repeats within
 * LOG_REPEAT_WINDOW_MS of its first time is not written again: when the
 * window ends (at the next line or log_tick) one line says how often it
 * repeated ("... repeated N times in the last 10 s"). */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG_REPEAT_WINDOW_MS 10000

/* Changes the repeat window (LOG_REPEAT_WINDOW_MS by default); tests use a
 * short one. */
void log_set_repeat_window(int ms);

/* Writes the summaries of repeats whose window has ended; call about once a
 * second from the process's loop. */
void log_tick(void);

/* Where a line the target would not take (a full disk under file:, a closed
 * stderr) is counted, or NULL. The process goes on either way. */
void log_count_lost(_Atomic uint64_t *counter);

#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
