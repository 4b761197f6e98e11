/* log.h — one logger per process: level filter, stderr/syslog/file target, reopen on signal. */
#ifndef TH_LOG_H
#define TH_LOG_H

#include <stdbool.h>

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

/* Sets the process name shown in each line, the minimum level and the target
 * ("stderr", "syslog" or "file:PATH"). Returns 0, or -1 when the file cannot be
 * opened (logging then goes to stderr). */
int log_init(const char *procname, enum log_level level, const char *target);

/* Changes the process name shown in each line (after fork). */
void log_set_procname(const char *procname);

/* Changes the minimum level. */
void log_set_level(enum log_level level);

/* While on, errors are also written to stderr whatever the target: a detached
 * daemon's start-up errors reach whoever started it. */
void log_errors_to_stderr(bool on);

/* Reopens a file target (after rotation). Returns 0 or -1. */
int log_reopen(void);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
