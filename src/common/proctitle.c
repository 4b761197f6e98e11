/* proctitle.c — the process title over argv's and the environment's area (proctitle.h). */
#include "proctitle.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

static char *area;      /* where argv[0] was */
static size_t area_len; /* up to the end of the last string contiguous with it */
/* The environment's copy, kept for the life of the process: a setenv()
 * (libraries call it in the children) moves environ to an array of its own,
 * and this one must still be held, not leaked. */
static char **volatile env_copy; /* volatile: written only, yet it must stay */

int proctitle_init(int argc, char **argv) {
    if (argc < 1 || argv == NULL || argv[0] == NULL || area)
        return -1;
    char *start = argv[0], *end = argv[0];
    for (int i = 0; i < argc; i++)
        if (argv[i] == end)
            end = argv[i] + strlen(argv[i]) + 1;
    size_t nenv = 0;
    while (environ && environ[nenv])
        nenv++;
    for (size_t i = 0; i < nenv; i++)
        if (environ[i] == end)
            end = environ[i] + strlen(environ[i]) + 1;

    char **env = calloc(nenv + 1, sizeof(*env));
    if (env == NULL)
        return -1;
    for (size_t i = 0; i < nenv; i++) {
        if ((env[i] = strdup(environ[i])) == NULL) {
            while (i > 0)
                free(env[--i]);
            free(env);
            return -1;
        }
    }
    char **args = calloc((size_t)argc, sizeof(*args));
    for (int i = 0; args && i < argc; i++) {
        if ((args[i] = strdup(argv[i])) == NULL) {
            while (i > 0)
                free(args[--i]);
            free(args);
            args = NULL;
        }
    }
    if (args == NULL) {
        for (size_t i = 0; i < nenv; i++)
            free(env[i]);
        free(env);
        return -1;
    }
    /* Nothing may point into the area any more once it holds the title. */
    bool invocation = program_invocation_name == argv[0];
    for (int i = 0; i < argc; i++)
        argv[i] = args[i];
    free(args);
    environ = env;
    env_copy = env;
    if (invocation) {
        program_invocation_name = argv[0];
        const char *slash = strrchr(argv[0], '/');
        program_invocation_short_name = slash ? (char *)slash + 1 : argv[0];
    }
    area = start;
    area_len = (size_t)(end - start);
    return 0;
}

void proctitle_set(const char *title) {
    if (area == NULL || area_len == 0)
        return;
    size_t n = strlen(title);
    if (n > area_len - 1)
        n = area_len - 1;
    memcpy(area, title, n);
    memset(area + n, '\0', area_len - n);
}

size_t proctitle_room(void) {
    return area_len;
}

size_t proctitle_join(char *buf, size_t n, const char *prefix, int argc, char *const *argv) {
    size_t len = 0;
    int w = snprintf(buf, n, "%s", prefix);
    len += w > 0 ? (size_t)w : 0;
    for (int i = 1; i < argc; i++) {
        w = snprintf(len < n ? buf + len : NULL, len < n ? n - len : 0, " %s", argv[i]);
        len += w > 0 ? (size_t)w : 0;
    }
    return len;
}
