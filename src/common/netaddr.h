/* netaddr.h — classifies an IP address as public or as one of the ranges the SSRF
 * guard refuses (loopback, private, link-local, ...), looking through IPv4
 * addresses hidden in IPv6 (mapped, NAT64, 6to4). */
#ifndef TH_NETADDR_H
#define TH_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

enum netaddr_class {
    NETADDR_PUBLIC,      /* globally routable unicast */
    NETADDR_UNSPECIFIED, /* 0.0.0.0/8, :: */
    NETADDR_LOOPBACK,    /* 127/8, ::1 */
    NETADDR_PRIVATE,     /* 10/8, 172.16/12, 192.168/16, fc00::/7, fec0::/10, 64:ff9b:1::/48 */
    NETADDR_LINK_LOCAL,  /* 169.254/16, fe80::/10 */
    NETADDR_CGNAT,       /* 100.64/10 */
    NETADDR_MULTICAST,   /* 224/4, ff00::/8 */
    NETADDR_RESERVED,    /* documentation, benchmarking, 240/4, broadcast, IETF and
                            unallocated IPv6 space, other address families */
};

/* The class of sa (AF_INET or AF_INET6; anything else is NETADDR_RESERVED). An
 * IPv6 address embedding an IPv4 one (::ffff:a.b.c.d, ::ffff:0:a.b.c.d,
 * 64:ff9b::a.b.c.d, 2002:AABB:CCDD::) gets the class of the IPv4 address. */
enum netaddr_class netaddr_classify(const struct sockaddr *sa);

/* The same for an address in text form ("10.0.0.1", "::1"). Returns 0, or -1
 * when text is not an IP address. */
int netaddr_classify_text(const char *text, enum netaddr_class *out);

/* sa as text into buf ("10.0.0.1", "::1"), or "(address family N)" for one
 * that is not AF_INET or AF_INET6. Returns buf. */
char *netaddr_to_text(const struct sockaddr *sa, char *buf, size_t n);

/* A short lowercase name for messages: "public", "loopback", ... */
const char *netaddr_class_name(enum netaddr_class c);

#endif
