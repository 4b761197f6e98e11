/* netaddr.c — the SSRF guard's address table. Everything not known to be public
 * unicast is refused. */
#include "netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct v4_range {
    uint32_t net;
    int bits;
    enum netaddr_class cls;
};

#define V4(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (d))

static const struct v4_range v4_ranges[] = {
    {V4(0, 0, 0, 0), 8, NETADDR_UNSPECIFIED},
    {V4(10, 0, 0, 0), 8, NETADDR_PRIVATE},
    {V4(100, 64, 0, 0), 10, NETADDR_CGNAT},
    {V4(127, 0, 0, 0), 8, NETADDR_LOOPBACK},
    {V4(169, 254, 0, 0), 16, NETADDR_LINK_LOCAL},
    {V4(172, 16, 0, 0), 12, NETADDR_PRIVATE},
    {V4(192, 0, 0, 0), 24, NETADDR_RESERVED},   /* IETF protocol assignments */
    {V4(192, 0, 2, 0), 24, NETADDR_RESERVED},   /* TEST-NET-1 */
    {V4(192, 88, 99, 0), 24, NETADDR_RESERVED}, /* 6to4 relay anycast */
    {V4(192, 168, 0, 0), 16, NETADDR_PRIVATE},
    {V4(198, 18, 0, 0), 15, NETADDR_RESERVED},   /* benchmarking */
    {V4(198, 51, 100, 0), 24, NETADDR_RESERVED}, /* TEST-NET-2 */
    {V4(203, 0, 113, 0), 24, NETADDR_RESERVED},  /* TEST-NET-3 */
    {V4(224, 0, 0, 0), 4, NETADDR_MULTICAST},
    {V4(240, 0, 0, 0), 4, NETADDR_RESERVED}, /* includes 255.255.255.255 */
};

static enum netaddr_class classify_v4(uint32_t a) {
    for (size_t i = 0; i < sizeof(v4_ranges) / sizeof(v4_ranges[0]); i++) {
        uint32_t mask = ~(uint32_t)0 << (32 - v4_ranges[i].bits);
        if ((a & mask) == v4_ranges[i].net)
            return v4_ranges[i].cls;
    }
    return NETADDR_PUBLIC;
}

static uint32_t be32_at(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static bool prefix_is(const uint8_t a[16], const uint8_t pfx[16], int bits) {
    int whole = bits / 8;
    if (memcmp(a, pfx, (size_t)whole) != 0)
        return false;
    int rest = bits % 8;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[whole] & mask) == (pfx[whole] & mask);
}

static enum netaddr_class classify_v6(const uint8_t a[16]) {
    /* Each prefix spelt out in full: prefix_is() reads up to its bit length. */
    static const uint8_t zero[16] = {0};
    static const uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t translated[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t nat64[16] = {0, 0x64, 0xff, 0x9b};
    static const uint8_t nat64_local[16] = {0, 0x64, 0xff, 0x9b, 0, 1};
    static const uint8_t discard[16] = {0x01, 0x00};
    static const uint8_t ietf[16] = {0x20, 0x01}; /* 2001::/23: Teredo, benchmarking, ORCHID */
    static const uint8_t doc[16] = {0x20, 0x01, 0x0d, 0xb8};
    static const uint8_t doc2[16] = {0x3f, 0xff}; /* 3fff::/20 */
    static const uint8_t sixtofour[16] = {0x20, 0x02};

    if (memcmp(a, zero, 16) == 0)
        return NETADDR_UNSPECIFIED;
    if (memcmp(a, zero, 15) == 0 && a[15] == 1)
        return NETADDR_LOOPBACK;
    if (prefix_is(a, mapped, 96) || prefix_is(a, translated, 96) || prefix_is(a, nat64, 96))
        return classify_v4(be32_at(a + 12));
    if (prefix_is(a, zero, 96))
        return NETADDR_RESERVED; /* deprecated IPv4-compatible */
    if (prefix_is(a, nat64_local, 48))
        return NETADDR_PRIVATE;
    if (prefix_is(a, discard, 64))
        return NETADDR_RESERVED;
    if (a[0] == 0xff)
        return NETADDR_MULTICAST;
    if ((a[0] & 0xfe) == 0xfc)
        return NETADDR_PRIVATE; /* fc00::/7 unique local */
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
        return NETADDR_LINK_LOCAL; /* fe80::/10 */
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0)
        return NETADDR_PRIVATE; /* fec0::/10 deprecated site-local */
    if ((a[0] & 0xe0) != 0x20)
        return NETADDR_RESERVED; /* outside 2000::/3, the global unicast space */
    if (prefix_is(a, sixtofour, 16))
        return classify_v4(be32_at(a + 2));
    if (prefix_is(a, ietf, 23) || prefix_is(a, doc, 32) || prefix_is(a, doc2, 20))
        return NETADDR_RESERVED;
    return NETADDR_PUBLIC;
}

enum netaddr_class netaddr_classify(const struct sockaddr *sa) {
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return classify_v4(ntohl(in->sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        return classify_v6(in6->sin6_addr.s6_addr);
    }
    return NETADDR_RESERVED;
}

int netaddr_classify_text(const char *text, enum netaddr_class *out) {
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
    memset(&in, 0, sizeof(in));
    memset(&in6, 0, sizeof(in6));
    if (inet_pton(AF_INET, text, &in.sin_addr) == 1) {
        in.sin_family = AF_INET;
        *out = netaddr_classify((const struct sockaddr *)&in);
        return 0;
    }
    if (inet_pton(AF_INET6, text, &in6.sin6_addr) == 1) {
        in6.sin6_family = AF_INET6;
        *out = netaddr_classify((const struct sockaddr *)&in6);
        return 0;
    }
    return -1;
}

const char *netaddr_class_name(enum netaddr_class c) {
    switch (c) {
    case NETADDR_PUBLIC:
        return "public";
    case NETADDR_UNSPECIFIED:
        return "unspecified";
    case NETADDR_LOOPBACK:
        return "loopback";
    case NETADDR_PRIVATE:
        return "private";
    case NETADDR_LINK_LOCAL:
        return "link-local";
    case NETADDR_CGNAT:
        return "carrier-grade NAT";
    case NETADDR_MULTICAST:
        return "multicast";
    case NETADDR_RESERVED:
        return "reserved";
    }
    return "reserved";
}

char *netaddr_to_text(const struct sockaddr *sa, char *buf, size_t n) {
    const void *raw = NULL;
    if (sa->sa_family == AF_INET)
        raw = &((const struct sockaddr_in *)sa)->sin_addr;
    else if (sa->sa_family == AF_INET6)
        raw = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (raw == NULL || inet_ntop(sa->sa_family, raw, buf, (socklen_t)n) == NULL)
        snprintf(buf, n, "(address family %d)", sa->sa_family);
    return buf;
}
