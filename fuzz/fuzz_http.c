/* fuzz_http.c — libFuzzer harness for the request parser of the HTTP layer
 * (src/http/core/parse.c): the input is fed in pieces whose sizes come from
 * its first bytes, as a connection would deliver it; requests are taken one
 * after another (pipelining). Checked: no crash, no piece left untaken while
 * the parser asks for more and no two calls in a row that take nothing (a
 * hang), the head reported once per request, every refusal a status the layer can
 * answer, every request's parts within the bytes given. */
#include "check.h"
#include "parse.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool status_ok(int s) {
    return s == 400 || s == 413 || s == 417 || s == 500 || s == 501 || s == 505;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2)
        return 0;
    size_t step = 1 + data[0] % 64; /* piece size: 1 to 64 bytes, or all at once */
    bool whole = data[1] & 1;
    data += 2;
    size -= 2;
    struct parse_limits limits = {.max_header = 2048, .max_body = 4096};
    struct parse ps;
    parse_init(&ps, &limits);
    size_t off = 0;
    int requests = 0, stalls = 0;
    bool head_seen = false;
    while (off < size) {
        size_t n = whole ? size - off : (size - off < step ? size - off : step);
        size_t used = 0;
        enum parse_status st = parse_feed(&ps, (const char *)data + off, n, &used);
        CHECK(used <= n);
        off += used;
        /* A call may take nothing (the head's last LF is left for the call
         * after PARSE_HEADERS), but never twice in a row: that would hang. */
        stalls = used == 0 && st != PARSE_ERROR ? stalls + 1 : 0;
        CHECK(stalls <= 1);
        if (st == PARSE_ERROR) {
            CHECK(status_ok(ps.err.status));
            CHECK(ps.err.code != NULL && ps.err.message[0] != '\0');
            break;
        }
        if (st == PARSE_MORE)
            CHECK(used == n); /* asked for more, so it took all it was given */
        if (st == PARSE_HEADERS) {
            CHECK(!head_seen); /* once per request */
            head_seen = true;
        }
        if (st == PARSE_COMPLETE) {
            head_seen = false;
            size_t tlen;
            const char *t = parse_target(&ps.req, &tlen);
            CHECK(tlen > 0 && (t[0] == '/' || (tlen == 1 && t[0] == '*')));
            CHECK(ps.req.head_len <= limits.max_header);
            CHECK(ps.req.body_len <= limits.max_body);
            for (int i = 0; i < ps.req.nheaders; i++)
                CHECK(ps.req.headers[i].value_off + ps.req.headers[i].value_len <= ps.req.head_len);
            requests++;
            parse_next(&ps);
        }
    }
    parse_free(&ps);
    return 0;
}
