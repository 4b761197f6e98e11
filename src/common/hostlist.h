/* hostlist.h — host lists (fetch.allow_hosts, fetch.deny_hosts) and the host of
 * a URL as they match it; the worker's fetch and the delivery child's callbacks
 * both go by them. */
#ifndef TH_HOSTLIST_H
#define TH_HOSTLIST_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

/* Host lists (fetch.allow_hosts, fetch.deny_hosts) are entries separated by
 * spaces (tabs and commas also work). An entry is a host name or an IP literal:
 *   - a name matches that host and every subdomain of it: "example.com" matches
 *     example.com and img.example.com, not badexample.com. Case and a trailing
 *     dot are ignored, as is a leading "." or "*." on the entry. Names are
 *     compared in ASCII (punycode) form: write internationalised names as
 *     xn--... . The port is not part of the match.
 *   - an IP literal (192.0.2.7, 2001:db8::1 or [2001:db8::1]) matches a URL
 *     whose host is that address however the URL writes it (127.1, 0x7f000001
 *     and [::ffff:127.0.0.1] are all 127.0.0.1). It does not match a name that
 *     resolves to the address, and there is no subnet syntax: the lists are
 *     about URL hosts; addresses are the guard's business.
 * deny_hosts: a URL whose host matches is not requested: fetch_blocked_host (fetching).
 * allow_hosts: a URL whose host matches may connect to any address, private,
 *   loopback, link-local and the rest included, even with allow_private off
 *   (an operator's internal image server). Other hosts keep the guard.
 * A host on both lists is denied. Every redirect hop is checked again, its
 * host against both lists and its connection against the guard with that
 * host's own allowance. */
/* Whether host (as in a URL: a name, an IPv4 literal or a bracketed IPv6 one)
 * matches an entry of list, by the rules above. NULL list or host: false. */
bool hostlist_match(const char *list, const char *host);

/* The host of the parsed URL u into buf as curl will look it up (punycode when
 * it can), IPv6 in brackets. Returns 0, or -1 when u has no host or one too
 * long for buf. */
int hostlist_curlu_host(CURLU *u, char *buf, size_t n);

/* The host of an absolute URL as hostlist_match takes it, into buf.
 * Returns 0, or -1 when the URL has no usable host. */
int hostlist_url_host(const char *url, char *buf, size_t n);

#endif
