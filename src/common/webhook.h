/* webhook.h — Standard Webhooks signatures (https://www.standardwebhooks.com):
 * HMAC-SHA256 over "<msg id>.<timestamp>.<body>" with the secret's bytes (the
 * base64 after "whsec_"), sent as "v1,<base64 signature>". With several
 * secrets (callback.secret lists them space-separated, for rotation) the
 * header carries one signature per secret, separated by spaces. */
#ifndef TH_WEBHOOK_H
#define TH_WEBHOOK_H

#include <stddef.h>

/* Room for the header value of up to 8 secrets. */
#define WEBHOOK_SIGNATURE_MAX 512

/* Writes the webhook-signature header value for the message into out (n
 * bytes). secrets is the space-separated list of "whsec_<base64>" secrets.
 * Returns 0, or -1 when a secret does not decode or out is too small. */
int webhook_sign(const char *secrets, const char *msg_id, long long timestamp, const void *body,
                 size_t len, char *out, size_t n);

#endif
