/* dashboard.c — placeholder while it is being written (issue 16). */
#include "handlers.h"
#include "respond.h"

void dashboard_handle(struct exchange *h) {
    respond_error(h, "not_implemented", NULL, 0, "not written yet");
    exchange_settle(h);
}
