/* accept.c — the Accept header's media ranges, parsed in place into a bounded
 * array, and the choice among offers they make (rules in accept.h). */
#include "accept.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#define ACCEPT_MAX_LEN    4096
#define ACCEPT_MAX_RANGES 64
#define Q_ONE             1000 /* q-values in thousandths */

/* How a range matches: star/star, type/star, type/subtype; NONE: not at all. */
enum spec { SPEC_NONE = -1, SPEC_ANY = 0, SPEC_TYPE = 1, SPEC_EXACT = 2 };

/* One media range: pointers into the header. */
struct range {
    const char *type, *sub;
    size_t type_len, sub_len;
    enum spec spec;
    int q; /* 0..Q_ONE */
};

static bool is_ows(char c) {
    return c == ' ' || c == '\t';
}

/* RFC 9110 tchar. */
static bool is_tchar(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* The length of the token at s, before end (0: none). */
static size_t token_len(const char *s, const char *end) {
    const char *p = s;
    while (p < end && is_tchar(*p))
        p++;
    return (size_t)(p - s);
}

/* The end of the list element at s: its first comma outside a quoted string,
 * or the end of the header. */
static const char *element_end(const char *s) {
    bool quoted = false;
    for (; *s != '\0'; s++) {
        if (quoted) {
            if (*s == '\\' && s[1] != '\0')
                s++;
            else if (*s == '"')
                quoted = false;
        } else if (*s == '"') {
            quoted = true;
        } else if (*s == ',') {
            break;
        }
    }
    return s;
}

/* The length of the quoted-string at s (starting with its DQUOTE), before
 * end, quotes included; 0 when it is not one (unterminated, a control). */
static size_t quoted_len(const char *s, const char *end) {
    for (const char *p = s + 1; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            return (size_t)(p + 1 - s);
        if (c == '\\') {
            if (++p == end)
                return 0;
            c = (unsigned char)*p;
            if (c != '\t' && (c < 0x20 || c == 0x7f))
                return 0;
        } else if (c != '\t' && (c < 0x20 || c == 0x7f)) {
            return 0;
        }
    }
    return 0;
}

/* Reads a qvalue of len bytes at s into *q (thousandths). Returns whether it
 * is one: "0" ["." 0*3DIGIT] / "1" ["." 0*3"0"]. */
static bool qvalue(const char *s, size_t len, int *q) {
    if (len == 0 || (s[0] != '0' && s[0] != '1') || len > 5)
        return false;
    if (len > 1 && s[1] != '.')
        return false;
    int v = s[0] == '1' ? Q_ONE : 0;
    int scale = 100;
    for (size_t i = 2; i < len; i++, scale /= 10) {
        if (s[i] < '0' || s[i] > '9' || (v == Q_ONE && s[i] != '0'))
            return false;
        v += (s[i] - '0') * scale;
    }
    *q = v;
    return true;
}

/* Parses the list element [s, end) into *r. Returns whether it is a media
 * range by accept.h's grammar. */
static bool range_parse(const char *s, const char *end, struct range *r) {
    while (s < end && is_ows(*s))
        s++;
    while (end > s && is_ows(end[-1]))
        end--;
    r->type = s;
    r->type_len = token_len(s, end);
    s += r->type_len;
    if (r->type_len == 0 || s == end || *s != '/')
        return false;
    r->sub = ++s;
    r->sub_len = token_len(s, end);
    s += r->sub_len;
    if (r->sub_len == 0)
        return false;
    bool type_star = r->type_len == 1 && r->type[0] == '*';
    bool sub_star = r->sub_len == 1 && r->sub[0] == '*';
    if (type_star && !sub_star)
        return false;
    r->spec = type_star ? SPEC_ANY : sub_star ? SPEC_TYPE : SPEC_EXACT;
    r->q = Q_ONE;
    bool seen_q = false;
    /* *( OWS ";" OWS [ name "=" ( token / quoted-string ) ] ) */
    for (;;) {
        while (s < end && is_ows(*s))
            s++;
        if (s == end)
            return true;
        if (*s != ';')
            return false;
        s++;
        while (s < end && is_ows(*s))
            s++;
        if (s == end || *s == ';')
            continue;
        const char *name = s;
        size_t name_len = token_len(s, end);
        s += name_len;
        if (name_len == 0 || s == end || *s != '=')
            return false;
        s++;
        bool quoted = s < end && *s == '"';
        size_t value_len = quoted ? quoted_len(s, end) : token_len(s, end);
        if (value_len == 0)
            return false;
        if (name_len == 1 && (name[0] == 'q' || name[0] == 'Q')) {
            if (seen_q || quoted || !qvalue(s, value_len, &r->q))
                return false;
            seen_q = true;
        }
        s += value_len;
    }
}

/* Reads at most ACCEPT_MAX_RANGES non-empty elements of header into ranges.
 * Returns how many of them are media ranges. */
static int ranges_parse(const char *header, struct range *ranges) {
    int n = 0;
    int elements = 0;
    const char *s = header;
    while (elements < ACCEPT_MAX_RANGES) {
        const char *end = element_end(s);
        const char *p = s;
        while (p < end && is_ows(*p))
            p++;
        if (p < end) {
            elements++;
            if (range_parse(p, end, &ranges[n]))
                n++;
        }
        if (*end == '\0')
            break;
        s = end + 1;
    }
    return n;
}

/* Whether [s, s + len) and [t, t + tlen) are the same, ignoring ASCII case. */
static bool same(const char *s, size_t len, const char *t, size_t tlen) {
    return len == tlen && strncasecmp(s, t, len) == 0;
}

/* The q (in *q) and specificity the most specific of the n ranges that
 * matches offer gives it; SPEC_NONE and q 0 when none does. */
static enum spec offer_rank(const char *offer, const struct range *ranges, int n, int *q) {
    size_t len = strcspn(offer, "; \t");
    const char *slash = memchr(offer, '/', len);
    size_t type_len = slash ? (size_t)(slash - offer) : len;
    const char *sub = slash ? slash + 1 : offer + len;
    size_t sub_len = (size_t)(offer + len - sub);
    enum spec best = SPEC_NONE;
    *q = 0;
    for (int i = 0; i < n; i++) {
        const struct range *r = &ranges[i];
        if (r->spec != SPEC_ANY && (slash == NULL || !same(offer, type_len, r->type, r->type_len)))
            continue;
        if (r->spec == SPEC_EXACT && !same(sub, sub_len, r->sub, r->sub_len))
            continue;
        if (r->spec > best || (r->spec == best && r->q > *q)) {
            best = r->spec;
            *q = r->q;
        }
    }
    return best;
}

int accept_pick(const char *accept, const char *const *offers, int n) {
    if (n < 1)
        return -1;
    int fallback = n - 1;
    if (accept == NULL || strnlen(accept, ACCEPT_MAX_LEN + 1) > ACCEPT_MAX_LEN)
        return fallback;
    struct range ranges[ACCEPT_MAX_RANGES];
    int nranges = ranges_parse(accept, ranges);
    int best = -1;
    int best_q = 0;
    enum spec best_spec = SPEC_NONE;
    for (int i = 0; i < n; i++) {
        int q;
        enum spec spec = offer_rank(offers[i], ranges, nranges, &q);
        if (q == 0)
            continue;
        bool better = best < 0 || q > best_q || (q == best_q && spec > best_spec) ||
                      (q == best_q && spec == best_spec && spec != SPEC_EXACT && i == fallback);
        if (better) {
            best = i;
            best_q = q;
            best_spec = spec;
        }
    }
    return best < 0 ? fallback : best;
}
