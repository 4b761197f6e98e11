/* reload.h — SIGHUP: read the configuration again and apply what can change live. */
#ifndef TH_MASTER_RELOAD_H
#define TH_MASTER_RELOAD_H

#include "master.h"

/* Re-reads m->conf_path. An invalid file is logged error by error and changes
 * nothing. A valid one replaces the running configuration, except the keys
 * that need a restart (logged and kept): children are scaled to the new
 * counts, and when anything they run with changed they are replaced one by
 * one (the old ones finish their work first). Logs are reopened. */
void reload_apply(struct master *m);

#endif
