/* id.h — job ids: 128 random bits from getrandom, base64url without padding. */
#ifndef TH_ID_H
#define TH_ID_H

#include <stdbool.h>
#include <stddef.h>

#define ID_LEN 22 /* characters, without the terminating NUL */

/* Writes a new id and its NUL into out (ID_LEN + 1 bytes). Returns 0, or -1 when
 * the kernel gives no randomness. */
int id_generate(char out[ID_LEN + 1]);

/* Whether s is the shape of an id: ID_LEN characters of the base64url alphabet. */
bool id_is_valid(const char *s);

/* Writes 2 * n lowercase hex digits of n random bytes and a NUL into out
 * (2n + 1 bytes), e.g. for fencing tokens. Returns 0 or -1. */
int id_random_hex(char *out, size_t n);

#endif
