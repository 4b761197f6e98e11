/* accept.h — content negotiation by a request's Accept header (RFC 9110
 * §12.5.1): which of a few media types to answer with. Pure; no allocation. */
#ifndef TH_HTTP_ACCEPT_H
#define TH_HTTP_ACCEPT_H

/* Picks one of the n media types of offers ("type/subtype", in the client's
 * order of preference; the last is the fallback) for a request whose Accept
 * header is accept (NULL: no header). Returns an index into offers.
 *
 * The header is a comma-separated list of media ranges (type/subtype, type/star
 * or star/star), each with optional ;-parameters, OWS around the commas and
 * semicolons. q= (name in any case) is the range's weight: 0, 0.d, 0.dd,
 * 0.ddd, 1, 1.0, 1.00, 1.000; absent, 1. Parameters other than q are read
 * (token or quoted-string values) and ignored. Types and subtypes compare
 * case-insensitively. A range that does not follow this grammar (no slash, an
 * empty or non-token name, star/subtype, a bad or repeated q, a parameter
 * without '=') is skipped as if absent; empty list elements are skipped too.
 *
 * ("star" is '*', which a comment cannot hold next to a slash.)
 *
 * Each offer is given the q of its most specific matching range: exact
 * type/subtype (specificity 2) over type/star (1) over star/star (0); among
 * ranges equally specific, the highest q. Offers are then ranked by (q, specificity):
 *   - an offer with q = 0 (refused, or matched by no range) is never picked;
 *   - the highest q wins, then the higher specificity;
 *   - at an equal (q, exact match) the earlier offer wins;
 *   - at an equal (q, wildcard match) the fallback wins if it is among them,
 *     else the earlier offer: a client that says only star/star or image/star
 *     has not said that it decodes the newer formats listed before the
 *     fallback.
 * When no offer has q > 0 — the header absent, empty or unparseable, or
 * naming none of offers — the fallback, n - 1. So:
 *   star/star, image/star, no header, "image/png"          -> the fallback
 *   "image/webp,star/star" with [avif, webp, jpeg]          -> webp
 *   "image/jpeg;q=0, star/star" with [avif, webp, jpeg]     -> avif
 *
 * A header over 4096 bytes is ignored (the fallback); only the first 64
 * non-empty list elements are read, malformed ones included. n is 1..;
 * with n == 1 returns 0; n < 1 returns -1. */
int accept_pick(const char *accept, const char *const *offers, int n);

#endif
