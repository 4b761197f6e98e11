/* hostlist.c — the host lists of fetch.allow_hosts and fetch.deny_hosts, and
 * the host of a URL as they match it; used by fetching and by callbacks. */
#include "hostlist.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define LIST_SEPARATORS " \t\r\n,"

/* Narrows s[0..n) to a bare host: no [] around an IPv6 literal, no trailing
 * dots, and (for list entries) no leading "." or "*.". */
static void trim_host(const char **s, size_t *n, bool entry) {
    if (*n >= 2 && (*s)[0] == '[' && (*s)[*n - 1] == ']') {
        (*s)++;
        *n -= 2;
    }
    while (*n > 0 && (*s)[*n - 1] == '.')
        (*n)--;
    if (entry && *n > 2 && (*s)[0] == '*' && (*s)[1] == '.') {
        *s += 2;
        *n -= 2;
    } else if (entry && *n > 1 && (*s)[0] == '.') {
        (*s)++;
        (*n)--;
    }
}

/* Parses s[0..n) as an IP literal into 16 bytes (IPv4 as ::ffff:a.b.c.d). */
static bool ip_literal(const char *s, size_t n, unsigned char out[16]) {
    char buf[INET6_ADDRSTRLEN + 1];
    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    struct in_addr a4;
    if (inet_pton(AF_INET, buf, &a4) == 1) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &a4, 4);
        return true;
    }
    return inet_pton(AF_INET6, buf, out) == 1;
}

static bool entry_matches(const char *e, size_t en, const char *h, size_t hn) {
    trim_host(&e, &en, true);
    trim_host(&h, &hn, false);
    if (en == 0 || hn == 0)
        return false;
    unsigned char ea[16], ha[16];
    bool e_ip = ip_literal(e, en, ea);
    bool h_ip = ip_literal(h, hn, ha);
    if (e_ip || h_ip)
        return e_ip && h_ip && memcmp(ea, ha, sizeof(ea)) == 0;
    if (hn < en || strncasecmp(h + hn - en, e, en) != 0)
        return false;
    return hn == en || h[hn - en - 1] == '.';
}

bool hostlist_match(const char *list, const char *host) {
    if (list == NULL || host == NULL)
        return false;
    size_t hn = strlen(host);
    for (const char *p = list; *p != '\0';) {
        p += strspn(p, LIST_SEPARATORS);
        size_t n = strcspn(p, LIST_SEPARATORS);
        if (n > 0 && entry_matches(p, n, host, hn))
            return true;
        p += n;
    }
    return false;
}

/* The host of u into buf as curl will look it up (punycode when it can), IPv6
 * in brackets. Returns -1 when u has no host or one too long for buf (longer
 * than any DNS name), which is refused rather than matched cut short. */
int hostlist_curlu_host(CURLU *u, char *buf, size_t n) {
    char *host = NULL;
    CURLUcode rc = CURLUE_NO_HOST;
#ifdef CURLU_PUNYCODE
    rc = curl_url_get(u, CURLUPART_HOST, &host, CURLU_PUNYCODE);
#endif
    if (rc != CURLUE_OK) /* no IDN support, or not convertible: curl cannot connect either */
        rc = curl_url_get(u, CURLUPART_HOST, &host, 0);
    int ok = rc == CURLUE_OK && host != NULL && host[0] != '\0' && strlen(host) < n ? 0 : -1;
    if (ok == 0)
        snprintf(buf, n, "%s", host);
    curl_free(host);
    return ok;
}

int hostlist_url_host(const char *url, char *buf, size_t n) {
    CURLU *u = curl_url();
    int rc = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK
                 ? hostlist_curlu_host(u, buf, n)
                 : -1;
    curl_url_cleanup(u);
    return rc;
}
