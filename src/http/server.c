/* placeholder, replaced by the http child implementation */
#include "server.h"
int http_main(const struct http_args *args) {
    (void)args;
    return 2;
}
