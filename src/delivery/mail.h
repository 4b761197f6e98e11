/* mail.h — the e-mail of a finished job: a multipart message with a short
 * text and the thumbnail attached (base64), sent with libcurl's SMTP to
 * smtp.url from smtp.from, STARTTLS required on smtp:// unless smtp.starttls
 * is off (smtps:// is TLS from the start), AUTH when smtp.username is set. */
#ifndef TH_MAIL_H
#define TH_MAIL_H

#include "config.h"

#include <curl/curl.h>
#include <stddef.h>

/* What a message owns until its transfer is over. */
struct mail {
    struct curl_slist *rcpt;
    struct curl_slist *headers;
    curl_mime *mime;
};

/* Sets e up to send job_id's thumbnail (len bytes of type mime) to the
 * address to. The bytes are copied. Returns 0, or -1 (out of memory, or
 * smtp.from unusable). Free m with mail_free after the transfer. */
int mail_prepare(CURL *e, struct mail *m, const struct config *cfg, const char *to,
                 const char *job_id, const char *mime, const void *bytes, size_t len);

void mail_free(struct mail *m);

/* The envelope address of smtp.from ("Name <a@b>" or "a@b") as "<a@b>" into
 * buf. Returns 0, or -1 when there is no address. */
int mail_envelope(const char *from, char *buf, size_t n);

#endif
