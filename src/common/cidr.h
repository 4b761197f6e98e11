/* cidr.h — lists of address blocks (http.trusted_proxies, http.metrics_allow):
 * parsing "10.0.0.0/8 ::1/128" and asking whether an address is in one. IPv4
 * is held as IPv4-mapped IPv6, so an IPv4 block also covers the same client
 * seen through a dual-stack socket (::ffff:10.0.0.7). */
#ifndef TH_CIDR_H
#define TH_CIDR_H

#include <stdbool.h>
#include <stddef.h>

/* Room for an address as text, IPv6 at its longest, and its NUL. */
#define CIDR_ADDR_TEXT_MAX 46

/* An address block: the first bits of addr (16 bytes, IPv4 as ::ffff:a.b.c.d,
 * where an IPv4 /n is an IPv6 /96+n). */
struct cidr {
    unsigned char addr[16];
    unsigned bits;
};

/* A list of blocks. Zero-initialised, it is the empty list. */
struct cidr_list {
    struct cidr *v;
    size_t n;
};

/* Parses text into l: blocks separated by spaces, tabs or commas, each an
 * address (inet_pton: dotted IPv4 or IPv6, no zone) with an optional /length
 * (0..32 for IPv4, 0..128 for IPv6; none: the address alone). A block with
 * bits set past its length (10.0.0.1/8) is refused as a likely mistake. NULL
 * or blank text is the empty list. Returns 0 (l owns an array: cidr_list_free),
 * or -1 with the reason, naming the entry, in why and l empty. */
int cidr_list_parse(struct cidr_list *l, const char *text, char *why, size_t n);

/* Frees what cidr_list_parse allocated; l is then the empty list. */
void cidr_list_free(struct cidr_list *l);

/* Whether addr (16 bytes as cidr_addr_parse makes them) is in a block of l.
 * The empty list holds nothing. */
bool cidr_list_match(const struct cidr_list *l, const unsigned char addr[16]);

/* Parses the address text[0..len) (dotted IPv4 or IPv6, as inet_pton reads
 * them; nothing else: no port, no brackets, no blanks) into out, IPv4 as
 * IPv4-mapped IPv6. Returns 0, or -1 when it is not one. */
int cidr_addr_parse(const char *text, size_t len, unsigned char out[16]);

/* addr as canonical text into buf (at least CIDR_ADDR_TEXT_MAX bytes): an
 * IPv4-mapped address as dotted IPv4, any other as inet_ntop writes IPv6.
 * Returns buf. */
char *cidr_addr_text(const unsigned char addr[16], char *buf, size_t n);

#endif
