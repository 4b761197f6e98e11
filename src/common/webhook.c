/* webhook.c — Standard Webhooks signing with OpenSSL's HMAC and base64. */
#include "webhook.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECRET_PREFIX "whsec_"
#define SECRET_MAX    128 /* decoded bytes */

/* Decodes the base64 part of one secret (len characters at b64) into key.
 * Returns the key's length, or -1. */
static int decode_secret(const char *b64, size_t len, unsigned char key[SECRET_MAX]) {
    if (len == 0 || len % 4 != 0 || len / 4 * 3 > SECRET_MAX)
        return -1;
    int n = EVP_DecodeBlock(key, (const unsigned char *)b64, (int)len);
    if (n < 0)
        return -1;
    /* EVP_DecodeBlock counts the padding as zero bytes: take them off. */
    if (b64[len - 1] == '=')
        n--;
    if (b64[len - 2] == '=')
        n--;
    return n;
}

int webhook_sign(const char *secrets, const char *msg_id, long long timestamp, const void *body,
                 size_t len, char *out, size_t n) {
    char ts[24];
    int tslen = snprintf(ts, sizeof(ts), "%lld", timestamp);
    /* What is signed: "<msg id>.<timestamp>.<body>". */
    size_t idlen = strlen(msg_id);
    size_t signed_len = idlen + 1 + (size_t)tslen + 1 + len;
    unsigned char *signed_text = malloc(signed_len);
    if (signed_text == NULL)
        return -1;
    memcpy(signed_text, msg_id, idlen);
    signed_text[idlen] = '.';
    memcpy(signed_text + idlen + 1, ts, (size_t)tslen);
    signed_text[idlen + 1 + (size_t)tslen] = '.';
    if (len)
        memcpy(signed_text + idlen + 2 + (size_t)tslen, body, len);

    size_t used = 0;
    out[0] = '\0';
    int rc = 0;
    const char *p = secrets;
    while (*p) {
        p += strspn(p, " \t");
        size_t tok = strcspn(p, " \t");
        if (tok == 0)
            break;
        size_t plen = strlen(SECRET_PREFIX);
        unsigned char key[SECRET_MAX];
        int klen = tok > plen && strncmp(p, SECRET_PREFIX, plen) == 0
                       ? decode_secret(p + plen, tok - plen, key)
                       : -1;
        p += tok;
        if (klen <= 0) {
            rc = -1;
            break;
        }

        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int maclen = 0;
        if (HMAC(EVP_sha256(), key, klen, signed_text, signed_len, mac, &maclen) == NULL) {
            rc = -1;
            break;
        }

        char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
        EVP_EncodeBlock((unsigned char *)b64, mac, (int)maclen);
        int w = snprintf(out + used, n - used, "%sv1,%s", used ? " " : "", b64);
        if (w < 0 || (size_t)w >= n - used) {
            rc = -1;
            break;
        }
        used += (size_t)w;
    }
    free(signed_text);
    return rc == 0 && used ? 0 : -1;
}
