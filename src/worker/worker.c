/* placeholder, replaced by the worker implementation */
#include "worker.h"
int worker_main(const struct worker_args *args) {
    (void)args;
    return 2;
}
