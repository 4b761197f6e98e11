/* hostlist.h — host lists (fetch.allow_hosts, fetch.deny_hosts,
 * callback.allow_hosts) and the host and port of a URL as they match them; the
 * worker's fetch, submit's callback check and the delivery child's callbacks
 * all go by them. */
#ifndef TH_HOSTLIST_H
#define TH_HOSTLIST_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

/* Host lists are entries separated by spaces (tabs and commas also work). An
 * entry is a host name or an IP literal, optionally with a port:
 *   - a name matches that host and every subdomain of it: "example.com" matches
 *     example.com and img.example.com, not badexample.com. Case and a trailing
 *     dot are ignored, as is a leading "." or "*." on the entry. Names are
 *     compared in ASCII (punycode) form: write internationalised names as
 *     xn--... .
 *   - an IP literal (192.0.2.7, 2001:db8::1 or [2001:db8::1]) matches a URL
 *     whose host is that address however the URL writes it (127.1, 0x7f000001
 *     and [::ffff:127.0.0.1] are all 127.0.0.1). It does not match a name that
 *     resolves to the address, and there is no subnet syntax: the lists are
 *     about URL hosts; addresses are the guard's business.
 *   - a port: "name:port", "192.0.2.7:port" or "[2001:db8::1]:port" (an IPv6
 *     literal needs its brackets to carry one). Such an entry matches only a
 *     URL whose port — the one it names, else its scheme's, 80 or 443 — is that
 *     one. An entry without a port matches every port.
 * deny_hosts: a URL whose host matches is not requested: fetch_blocked_host
 *   (fetching), callback_blocked_host (callbacks). Its entries take no port:
 *   a denied host is denied on every port.
 * allow_hosts: a URL whose host (and port) matches may connect to any address,
 *   private, loopback, link-local and the rest included, even with
 *   allow_private off (an operator's internal image server). Others keep the
 *   guard.
 * callback.allow_hosts: when not empty, the only hosts (and ports) a callback
 *   may go to; it grants no address: the guard applies as for any callback.
 * A host on both fetch lists is denied. Every redirect hop is checked again,
 * its host against both lists and its connection against the guard with that
 * hop's own allowance. */

/* Whether host (as in a URL: a name, an IPv4 literal or a bracketed IPv6 one)
 * on port (1..65535; 0 when not known: only entries without a port can match)
 * matches an entry of list, by the rules above. NULL list or host: false. */
bool hostlist_match(const char *list, const char *host, int port);

/* Whether the absolute URL's host and port match an entry of list (as
 * hostlist_match). A URL without a usable host matches nothing. */
bool hostlist_match_url(const char *list, const char *url);

/* Checks the syntax of a list: every port 1..65535, brackets closed, no empty
 * host; with ports false, no entry may carry a port (deny_hosts). Returns 0,
 * or -1 with the reason (naming the entry) in why. */
int hostlist_check(const char *list, bool ports, char *why, size_t n);

/* The host of the parsed URL u into buf as curl will look it up (punycode when
 * it can), IPv6 in brackets. Returns 0, or -1 when u has no host or one too
 * long for buf. */
int hostlist_curlu_host(CURLU *u, char *buf, size_t n);

/* The port the parsed URL u connects to: its own, else its scheme's default.
 * Returns 1..65535, or 0 when it has none curl knows. */
int hostlist_curlu_port(CURLU *u);

/* The host of an absolute URL as hostlist_match takes it, into buf, and its
 * port (as hostlist_curlu_port) into *port unless port is NULL. Returns 0, or
 * -1 when the URL has no usable host. */
int hostlist_url_host(const char *url, char *buf, size_t n, int *port);

#endif
