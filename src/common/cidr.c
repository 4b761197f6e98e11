/* cidr.c — address blocks: parsing a list of them and matching an address,
 * with IPv4 held as IPv4-mapped IPv6 throughout. */
#include "cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define SEPARATORS  " \t\r\n,"
#define ENTRY_SHOWN 100 /* characters of a bad entry quoted in a message */

static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool is_v4(const unsigned char a[16]) {
    return memcmp(a, v4_mapped, sizeof(v4_mapped)) == 0;
}

int cidr_addr_parse(const char *text, size_t len, unsigned char out[16]) {
    char buf[CIDR_ADDR_TEXT_MAX];
    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, text, len);
    buf[len] = '\0';
    struct in_addr a4;
    if (inet_pton(AF_INET, buf, &a4) == 1) {
        memcpy(out, v4_mapped, sizeof(v4_mapped));
        memcpy(out + 12, &a4, 4);
        return 0;
    }
    return inet_pton(AF_INET6, buf, out) == 1 ? 0 : -1;
}

char *cidr_addr_text(const unsigned char addr[16], char *buf, size_t n) {
    const char *ok = is_v4(addr) ? inet_ntop(AF_INET, addr + 12, buf, (socklen_t)n)
                                 : inet_ntop(AF_INET6, addr, buf, (socklen_t)n);
    if (ok == NULL && n > 0)
        buf[0] = '\0';
    return buf;
}

/* Whether the first bits of a and b agree. */
static bool prefix_equal(const unsigned char a[16], const unsigned char b[16], unsigned bits) {
    unsigned bytes = bits / 8, rest = bits % 8;
    if (memcmp(a, b, bytes) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[bytes] & mask) == (b[bytes] & mask);
}

/* Whether any bit of a past its first bits is set. */
static bool host_bits_set(const unsigned char a[16], unsigned bits) {
    for (unsigned i = bits; i < 128; i++)
        if (a[i / 8] & (0x80 >> (i % 8)))
            return true;
    return false;
}

/* Parses the entry e[0..n) into c; on error writes why. */
static int parse_entry(const char *e, size_t n, struct cidr *c, char *why, size_t whylen) {
    const char *slash = memchr(e, '/', n);
    size_t alen = slash ? (size_t)(slash - e) : n;
    int shown = (int)(n > ENTRY_SHOWN ? ENTRY_SHOWN : n);
    if (cidr_addr_parse(e, alen, c->addr) < 0) {
        snprintf(why, whylen,
                 "'%.*s' is not an address block: expected an IPv4 or IPv6 address "
                 "with an optional /length (10.0.0.0/8, ::1/128)",
                 shown, e);
        return -1;
    }
    bool v4 = is_v4(c->addr) && memchr(e, ':', alen) == NULL;
    unsigned max = v4 ? 32 : 128, len = max;
    if (slash) {
        const char *d = slash + 1;
        size_t dn = n - alen - 1;
        len = 0;
        bool ok = dn >= 1 && dn <= 3;
        for (size_t i = 0; ok && i < dn; i++) {
            ok = d[i] >= '0' && d[i] <= '9';
            len = len * 10 + (unsigned)(d[i] - '0');
        }
        if (!ok || len > max) {
            snprintf(why, whylen, "'%.*s': the length after / must be 0..%u", shown, e, max);
            return -1;
        }
    }
    c->bits = v4 ? 96 + len : len;
    if (host_bits_set(c->addr, c->bits)) {
        char net[CIDR_ADDR_TEXT_MAX];
        struct cidr masked = *c;
        for (unsigned i = c->bits; i < 128; i++)
            masked.addr[i / 8] &= (unsigned char)~(0x80 >> (i % 8));
        snprintf(why, whylen, "'%.*s' has bits set past /%u: did you mean %s/%u?", shown, e, len,
                 cidr_addr_text(masked.addr, net, sizeof(net)), len);
        return -1;
    }
    return 0;
}

int cidr_list_parse(struct cidr_list *l, const char *text, char *why, size_t whylen) {
    l->v = NULL;
    l->n = 0;
    size_t cap = 0;
    for (const char *p = text ? text : ""; *p != '\0';) {
        p += strspn(p, SEPARATORS);
        size_t n = strcspn(p, SEPARATORS);
        if (n == 0)
            break;
        if (l->n == cap) {
            size_t grown = cap ? 2 * cap : 8;
            struct cidr *v = realloc(l->v, grown * sizeof(*v));
            if (v == NULL) {
                snprintf(why, whylen, "out of memory");
                cidr_list_free(l);
                return -1;
            }
            l->v = v;
            cap = grown;
        }
        if (parse_entry(p, n, &l->v[l->n], why, whylen) < 0) {
            cidr_list_free(l);
            return -1;
        }
        l->n++;
        p += n;
    }
    return 0;
}

void cidr_list_free(struct cidr_list *l) {
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

bool cidr_list_match(const struct cidr_list *l, const unsigned char addr[16]) {
    for (size_t i = 0; i < l->n; i++)
        if (prefix_equal(l->v[i].addr, addr, l->v[i].bits))
            return true;
    return false;
}
