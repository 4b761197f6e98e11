/* hostlist.c — the host lists of fetch.allow_hosts, fetch.deny_hosts and
 * callback.allow_hosts (entries with an optional port), and the host and port
 * of a URL as they match them; used by fetching, submit and callbacks. */
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

/* Reads s[0..n) as a port, 1..65535 in decimal digits. Returns it, or -1. */
static int parse_port(const char *s, size_t n) {
    if (n == 0 || n > 5)
        return -1;
    int port = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        port = port * 10 + (s[i] - '0');
    }
    return port >= 1 && port <= 65535 ? port : -1;
}

/* Splits the entry e[0..n) into its host (brackets and all, as written) and
 * its port (0: none). Returns 0, or -1 when it is malformed: an unclosed
 * bracket, something other than ":port" after one, or a bad port. An entry
 * with two colons or more and no brackets is a bare IPv6 literal, port-less. */
static int split_entry(const char *e, size_t n, const char **host, size_t *hn, int *port) {
    *host = e;
    *hn = n;
    *port = 0;
    const char *colon;
    if (n > 0 && e[0] == '[') {
        const char *close = memchr(e, ']', n);
        if (close == NULL)
            return -1;
        *hn = (size_t)(close - e) + 1;
        colon = *hn < n ? close + 1 : NULL;
        if (colon && *colon != ':')
            return -1;
    } else {
        colon = memchr(e, ':', n);
        if (colon && memchr(colon + 1, ':', n - (size_t)(colon + 1 - e)))
            return 0; /* a bare IPv6 literal */
        if (colon)
            *hn = (size_t)(colon - e);
    }
    if (colon == NULL)
        return 0;
    *port = parse_port(colon + 1, n - (size_t)(colon + 1 - e));
    return *port > 0 ? 0 : -1;
}

static bool entry_matches(const char *entry, size_t n, const char *h, size_t hn, int port) {
    const char *e;
    size_t en;
    int eport;
    if (split_entry(entry, n, &e, &en, &eport) < 0 || (eport != 0 && eport != port))
        return false;
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

bool hostlist_match(const char *list, const char *host, int port) {
    if (list == NULL || host == NULL)
        return false;
    size_t hn = strlen(host);
    for (const char *p = list; *p != '\0';) {
        p += strspn(p, LIST_SEPARATORS);
        size_t n = strcspn(p, LIST_SEPARATORS);
        if (n > 0 && entry_matches(p, n, host, hn, port))
            return true;
        p += n;
    }
    return false;
}

bool hostlist_match_url(const char *list, const char *url) {
    char host[256];
    int port = 0;
    return list != NULL && url != NULL && hostlist_url_host(url, host, sizeof(host), &port) == 0 &&
           hostlist_match(list, host, port);
}

int hostlist_check(const char *list, bool ports, char *why, size_t whylen) {
    for (const char *p = list; *p != '\0';) {
        p += strspn(p, LIST_SEPARATORS);
        size_t n = strcspn(p, LIST_SEPARATORS);
        if (n == 0)
            break;
        const char *h;
        size_t hn;
        int port;
        unsigned char addr[16];
        bool bad = split_entry(p, n, &h, &hn, &port) < 0;
        bool bare_v6 = !bad && h[0] != '[' && memchr(h, ':', hn) != NULL;
        if (!bad) {
            trim_host(&h, &hn, true);
            bad = hn == 0 || (bare_v6 && !ip_literal(h, hn, addr)) ||
                  (p[0] == '[' && !ip_literal(h, hn, addr));
        }
        if (bad) {
            snprintf(why, whylen,
                     "'%.*s' is not a host: expected a name or an IP literal, with :port "
                     "(1..65535) if any, an IPv6 literal in [] to carry one",
                     (int)(n > 200 ? 200 : n), p);
            return -1;
        }
        if (!ports && port != 0) {
            snprintf(why, whylen, "'%.*s': no port here: a listed host counts on every port",
                     (int)(n > 200 ? 200 : n), p);
            return -1;
        }
        p += n;
    }
    return 0;
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

int hostlist_curlu_port(CURLU *u) {
    char *text = NULL;
    int port = 0;
    if (curl_url_get(u, CURLUPART_PORT, &text, CURLU_DEFAULT_PORT) == CURLUE_OK && text)
        port = parse_port(text, strlen(text));
    curl_free(text);
    return port > 0 ? port : 0;
}

int hostlist_url_host(const char *url, char *buf, size_t n, int *port) {
    CURLU *u = curl_url();
    int rc = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK
                 ? hostlist_curlu_host(u, buf, n)
                 : -1;
    if (rc == 0 && port)
        *port = hostlist_curlu_port(u);
    curl_url_cleanup(u);
    return rc;
}
