/* mail.c — builds a job's e-mail for libcurl: envelope, headers, MIME parts. */
#include "mail.h"
#include "version.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int mail_envelope(const char *from, char *buf, size_t n) {
    const char *lt = strchr(from, '<');
    const char *start = lt ? lt + 1 : from;
    size_t len = lt ? strcspn(start, ">") : strlen(from);
    while (!lt && len > 0 && (start[0] == ' ' || start[0] == '\t')) {
        start++;
        len--;
    }
    while (!lt && len > 0 && (start[len - 1] == ' ' || start[len - 1] == '\t'))
        len--;
    if (len == 0 || memchr(start, '@', len) == NULL || len + 3 > n)
        return -1;
    snprintf(buf, n, "<%.*s>", (int)len, start);
    return 0;
}

/* The file name extension for an image type. */
static const char *extension(const char *mime) {
    static const struct {
        const char *mime, *ext;
    } table[] = {{"image/jpeg", "jpg"}, {"image/png", "png"},   {"image/webp", "webp"},
                 {"image/gif", "gif"},  {"image/avif", "avif"}, {"image/heif", "heic"},
                 {"image/tiff", "tif"}};
    for (size_t i = 0; i < sizeof(table) / sizeof(*table); i++)
        if (strcmp(mime, table[i].mime) == 0)
            return table[i].ext;
    return "bin";
}

static int add_header(struct curl_slist **list, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int add_header(struct curl_slist **list, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    struct curl_slist *l = curl_slist_append(*list, line);
    if (l == NULL)
        return -1;
    *list = l;
    return 0;
}

int mail_prepare(CURL *e, struct mail *m, const struct config *cfg, const char *to,
                 const char *job_id, const char *mime, const void *bytes, size_t len) {
    memset(m, 0, sizeof(*m));
    char envelope_from[320], rcpt[320];
    if (mail_envelope(cfg->smtp_from, envelope_from, sizeof(envelope_from)) < 0 ||
        snprintf(rcpt, sizeof(rcpt), "<%s>", to) >= (int)sizeof(rcpt))
        return -1;
    if ((m->rcpt = curl_slist_append(NULL, rcpt)) == NULL)
        goto fail;

    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    /* The Message-ID is the same on every retry, so a receiver can drop a
     * duplicate left by an attempt whose answer was lost. */
    if (add_header(&m->headers, "From: %s", cfg->smtp_from) < 0 ||
        add_header(&m->headers, "To: %s", to) < 0 ||
        add_header(&m->headers, "Subject: Your thumbnail is ready") < 0 ||
        add_header(&m->headers, "Date: %s", date) < 0 ||
        add_header(&m->headers, "Message-ID: <%s.mail@thumbnailed>", job_id) < 0 ||
        add_header(&m->headers, "X-Mailer: thumbnailed/%s", THUMBNAILED_VERSION) < 0)
        goto fail;

    if ((m->mime = curl_mime_init(e)) == NULL)
        goto fail;
    char text[256];
    snprintf(text, sizeof(text), "The thumbnail of job %s is attached.\r\n", job_id);
    curl_mimepart *part = curl_mime_addpart(m->mime);
    if (part == NULL || curl_mime_data(part, text, CURL_ZERO_TERMINATED) != CURLE_OK ||
        curl_mime_type(part, "text/plain; charset=utf-8") != CURLE_OK)
        goto fail;
    char name[96];
    snprintf(name, sizeof(name), "thumbnail-%s.%s", job_id, extension(mime));
    part = curl_mime_addpart(m->mime);
    if (part == NULL || curl_mime_data(part, bytes, len) != CURLE_OK ||
        curl_mime_type(part, mime) != CURLE_OK || curl_mime_filename(part, name) != CURLE_OK ||
        curl_mime_encoder(part, "base64") != CURLE_OK)
        goto fail;

    curl_easy_setopt(e, CURLOPT_URL, cfg->smtp_url);
    curl_easy_setopt(e, CURLOPT_MAIL_FROM, envelope_from);
    curl_easy_setopt(e, CURLOPT_MAIL_RCPT, m->rcpt);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, m->headers);
    curl_easy_setopt(e, CURLOPT_MIMEPOST, m->mime);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    if (strncmp(cfg->smtp_url, "smtp://", 7) == 0)
        curl_easy_setopt(e, CURLOPT_USE_SSL, cfg->smtp_starttls ? CURLUSESSL_ALL : CURLUSESSL_NONE);
    if (cfg->smtp_username[0] != '\0') {
        curl_easy_setopt(e, CURLOPT_USERNAME, cfg->smtp_username);
        curl_easy_setopt(e, CURLOPT_PASSWORD, cfg->smtp_password);
    }
    return 0;
fail:
    mail_free(m);
    return -1;
}

void mail_free(struct mail *m) {
    curl_slist_free_all(m->rcpt);
    curl_slist_free_all(m->headers);
    curl_mime_free(m->mime);
    memset(m, 0, sizeof(*m));
}
