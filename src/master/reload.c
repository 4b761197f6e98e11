/* reload.c — live reconfiguration on SIGHUP (nginx's reload: new children with
 * the new configuration, old ones finish what they are doing and exit). */
#include "reload.h"
#include "log.h"
#include "store.h"
#include "supervise.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

/* Keys read once at start: changing them needs a restart. */
static const char *const fixed_keys[][2] = {
    {"daemon", "user"},
    {"daemon", "pid_file"},
    {"daemon", "runtime_dir"},
    {"http", "listen"},
    {"cache", "size"},
    {"redis", "mode"},
    {"redis", "url"},
    {"redis", "password"},
    {"redis", "server"},
    {"redis", "data_dir"},
    {"redis", "key_prefix"},
    {"redis", "max_memory"},
    {"redis", "username"},
    {"redis", "sentinels"},
    {"redis", "master_name"},
    {"redis", "sentinel_password"},
    {"redis", "min_replicas_ack"},
};

/* Keys only the master reads, or that scale rather than replace children. */
static const char *const master_keys[][2] = {
    {"daemon", "log_level"}, {"daemon", "log_target"}, {"daemon", "stop_timeout"},
    {"http", "processes"},   {"worker", "processes"},  {"worker", "job_timeout"},
};

static bool listed(const char *const list[][2], size_t n, const char *section, const char *key) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(list[i][0], section) && !strcmp(list[i][1], key))
            return true;
    return false;
}

struct changes {
    struct master *m;
    struct config *next;
    int children; /* changed keys the children run with */
    int total;
};

static void on_changed(const char *section, const char *key, void *arg) {
    struct changes *ch = arg;
    ch->total++;
    if (listed(fixed_keys, sizeof(fixed_keys) / sizeof(fixed_keys[0]), section, key)) {
        log_warn("reload: %s.%s changed but needs a restart; the running value stays", section,
                 key);
        config_copy_key(ch->next, &ch->m->cfg, section, key);
        ch->total--;
        return;
    }
    if (!listed(master_keys, sizeof(master_keys) / sizeof(master_keys[0]), section, key))
        ch->children++;
    log_info("reload: %s.%s changed", section, key);
}

static void log_warning(const char *msg, void *arg) {
    (void)arg;
    log_warn("reload: %s", msg);
}

void reload_apply(struct master *m) {
    struct config next;
    struct config_errors errs = {0};
    if (config_load(&next, m->conf_path, &errs) < 0) {
        for (size_t i = 0; i < errs.count; i++)
            log_error("reload: %s", errs.msgs[i]);
        log_error("reload: %s is invalid: the running configuration stays", m->conf_path);
        config_free(&next);
        config_errors_free(&errs);
        log_reopen();
        return;
    }
    config_errors_free(&errs);
    if (next.storage_backend == CONFIG_STORAGE_S3) {
        struct store_error err;
        if (store_check_config(&next, &err) == STORE_REFUSED) {
            log_error("reload: storage: %s: the running configuration stays", err.message);
            config_free(&next);
            log_reopen();
            return;
        }
    }

    struct changes ch = {.m = m, .next = &next};
    config_diff(&m->cfg, &next, on_changed, &ch);
    bool new_target = strcmp(m->cfg.log_target, next.log_target) != 0;
    config_free(&m->cfg);
    m->cfg = next;

    log_set_level((enum log_level)m->cfg.log_level);
    if (new_target) {
        /* A detached daemon has no terminal: stderr means syslog there. */
        const char *target = m->cfg.log_target;
        if (!m->foreground && strcmp(target, "stderr") == 0)
            target = "syslog";
        log_init("master", (enum log_level)m->cfg.log_level, target);
    } else {
        log_reopen();
    }
    if (ch.children > 0) {
        /* What the children run with changed: replace them all. */
        supervise_retire_all(m);
    } else {
        /* Same configuration for them: they re-read the API keys file and
         * reopen their logs. */
        supervise_reopen_all(m);
    }
    supervise_scale(m);
    log_info("reload: %s applied (%d change%s): %lld http, %lld workers%s", m->conf_path, ch.total,
             ch.total == 1 ? "" : "s", (long long)m->cfg.http_processes,
             (long long)m->cfg.worker_processes,
             ch.children ? "; children replaced after their current work" : "");
    config_each_warning(&m->cfg, log_warning, NULL);
}
