/* id.c — unguessable identifiers. */
#include "id.h"

#include <errno.h>
#include <openssl/evp.h>
#include <string.h>
#include <sys/random.h>

static int fill_random(unsigned char *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        got += (size_t)r;
    }
    return 0;
}

int id_generate(char out[ID_LEN + 1]) {
    unsigned char raw[16];
    unsigned char b64[32];
    if (fill_random(raw, sizeof(raw)) < 0)
        return -1;
    EVP_EncodeBlock(b64, raw, sizeof(raw)); /* 24 chars, the last two '=' */
    for (int i = 0; i < ID_LEN; i++) {
        unsigned char c = b64[i];
        out[i] = c == '+' ? '-' : c == '/' ? '_' : (char)c;
    }
    out[ID_LEN] = '\0';
    return 0;
}

bool id_is_valid(const char *s) {
    if (s == NULL || strlen(s) != ID_LEN)
        return false;
    for (int i = 0; i < ID_LEN; i++) {
        char c = s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_';
        if (!ok)
            return false;
    }
    /* 128 bits end on a 2-bit boundary: the last character carries 2 bits only. */
    return strchr("AQgw", s[ID_LEN - 1]) != NULL;
}

int id_random_hex(char *out, size_t n) {
    unsigned char raw[64];
    if (n > sizeof(raw) || fill_random(raw, n) < 0)
        return -1;
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[2 * n] = '\0';
    return 0;
}
