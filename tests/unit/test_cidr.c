/* test_cidr.c — address blocks: lists that parse and those that do not (with
 * the reason), a table of addresses against blocks (IPv4, IPv6, IPv4 seen as
 * IPv4-mapped IPv6, edges of each length), canonical address text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "cidr.h"

static void test_parse(void **state) {
    (void)state;
    static const struct {
        const char *text;
        size_t n;        /* blocks, when it parses */
        const char *why; /* in the reason, when it does not */
    } cases[] = {
        {NULL, 0, NULL},
        {"", 0, NULL},
        {"  \t ", 0, NULL},
        {"127.0.0.1/32 10.0.0.0/8 ::1/128", 3, NULL},
        {"10.0.0.0/8,192.168.0.0/16\tfc00::/7", 3, NULL},
        {"192.0.2.7", 1, NULL},
        {"2001:db8::7", 1, NULL},
        {"0.0.0.0/0 ::/0", 2, NULL},
        {"::ffff:10.0.0.0/104", 1, NULL},
        {"10.0.0.1/8", 0, "did you mean 10.0.0.0/8?"},
        {"192.168.1.7/31", 0, "has bits set past /31"},
        {"2001:db8::1/32", 0, "did you mean 2001:db8::/32?"},
        {"10.0.0.0/33", 0, "0..32"},
        {"::/129", 0, "0..128"},
        {"10.0.0.0/", 0, "0..32"},
        {"10.0.0.0/8x", 0, "0..32"},
        {"10.0.0.0/-1", 0, "0..32"},
        {"10.0.0.0/0008", 0, "0..32"},
        {"10.0.0/8", 0, "'10.0.0/8' is not an address block"},
        {"localhost", 0, "'localhost' is not an address block"},
        {"[::1]/128", 0, "is not an address block"},
        {"fe80::1%eth0/128", 0, "is not an address block"},
        {"127.0.0.1:80", 0, "is not an address block"},
        {"010.0.0.0/8", 0, "is not an address block"}, /* no octal */
        {"127.0.0.1/32 nope", 0, "'nope'"},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cidr_list l = {0};
        char why[256] = "";
        int rc = cidr_list_parse(&l, cases[i].text, why, sizeof(why));
        bool want_ok = cases[i].why == NULL;
        if ((rc == 0) != want_ok || (want_ok && l.n != cases[i].n) ||
            (!want_ok && (strstr(why, cases[i].why) == NULL || l.n != 0 || l.v != NULL))) {
            print_error("'%s': rc %d, %zu blocks, '%s'\n", cases[i].text ? cases[i].text : "NULL",
                        rc, l.n, why);
            bad++;
        }
        cidr_list_free(&l);
        assert_int_equal(l.n, 0);
    }
    assert_int_equal(bad, 0);

    /* More blocks than the first allocation holds. */
    char many[2048] = "";
    for (int i = 0; i < 100; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "10.%d.0.0/16 ", i);
    struct cidr_list l;
    char why[256];
    assert_int_equal(cidr_list_parse(&l, many, why, sizeof(why)), 0);
    assert_int_equal(l.n, 100);
    unsigned char a[16];
    assert_int_equal(cidr_addr_parse("10.99.3.4", 9, a), 0);
    assert_true(cidr_list_match(&l, a));
    assert_int_equal(cidr_addr_parse("10.100.3.4", 10, a), 0);
    assert_false(cidr_list_match(&l, a));
    cidr_list_free(&l);
}

static void test_match_table(void **state) {
    (void)state;
    static const struct {
        const char *list;
        const char *addr;
        bool want;
    } cases[] = {
        {"127.0.0.1/32", "127.0.0.1", true},
        {"127.0.0.1/32", "127.0.0.2", false},
        {"127.0.0.1", "127.0.0.1", true},
        {"127.0.0.0/8", "127.255.255.255", true},
        {"10.0.0.0/8", "10.255.0.1", true},
        {"10.0.0.0/8", "11.0.0.0", false},
        {"10.0.0.0/8", "9.255.255.255", false},
        {"172.16.0.0/12", "172.31.255.255", true},
        {"172.16.0.0/12", "172.32.0.0", false},
        {"192.168.1.128/25", "192.168.1.128", true},
        {"192.168.1.128/25", "192.168.1.127", false},
        {"192.168.1.6/31", "192.168.1.8", false},
        {"192.168.1.6/31", "192.168.1.7", true},
        {"0.0.0.0/0", "203.0.113.9", true},
        {"0.0.0.0/0", "2001:db8::1", false}, /* an IPv4 block holds IPv4 only */
        /* The same IPv4 client through a dual-stack socket. */
        {"10.0.0.0/8", "::ffff:10.1.2.3", true},
        {"127.0.0.1/32", "::ffff:127.0.0.1", true},
        {"::ffff:10.0.0.0/104", "10.3.2.1", true},
        {"::1/128", "::1", true},
        {"::1/128", "0:0:0:0:0:0:0:1", true},
        {"::1/128", "::2", false},
        {"::1/128", "127.0.0.1", false},
        {"fc00::/7", "fd12:3456::1", true},
        {"fc00::/7", "fe00::1", false},
        {"2001:db8::/32", "2001:db8:ffff::1", true},
        {"2001:db8::/32", "2001:db9::1", false},
        {"2001:db8::/33", "2001:db8:8000::1", false},
        {"2001:db8::/33", "2001:db8:7fff::1", true},
        {"::/0", "2001:db8::1", true},
        {"::/0", "10.0.0.1", true}, /* IPv4 is ::ffff:0:0/96 within it */
        {"", "127.0.0.1", false},
        {"10.0.0.0/8 ::1/128 192.0.2.0/24", "192.0.2.200", true},
        {"10.0.0.0/8 ::1/128 192.0.2.0/24", "198.51.100.1", false},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cidr_list l;
        char why[256];
        unsigned char a[16];
        assert_int_equal(cidr_list_parse(&l, cases[i].list, why, sizeof(why)), 0);
        assert_int_equal(cidr_addr_parse(cases[i].addr, strlen(cases[i].addr), a), 0);
        if (cidr_list_match(&l, a) != cases[i].want) {
            print_error("%s in '%s': want %d\n", cases[i].addr, cases[i].list, cases[i].want);
            bad++;
        }
        cidr_list_free(&l);
    }
    assert_int_equal(bad, 0);
}

static void test_addresses(void **state) {
    (void)state;
    static const struct {
        const char *text;
        const char *canonical; /* NULL: not an address */
    } cases[] = {
        {"127.0.0.1", "127.0.0.1"},
        {"::ffff:127.0.0.1", "127.0.0.1"},
        {"::FFFF:7f00:1", "127.0.0.1"},
        {"0:0::1", "::1"},
        {"2001:DB8:0:0::7", "2001:db8::7"},
        {"1.2.3.4.", NULL},
        {"1.2.3", NULL},
        {"127.1", NULL}, /* inet_pton: four parts only */
        {"0x7f000001", NULL},
        {" 1.2.3.4", NULL},
        {"[::1]", NULL},
        {"1.2.3.4:80", NULL},
        {"", NULL},
        {"unknown", NULL},
        {"0000:0000:0000:0000:0000:0000:0000:0000:0", NULL}, /* too long to be one */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned char a[16];
        char text[CIDR_ADDR_TEXT_MAX];
        int rc = cidr_addr_parse(cases[i].text, strlen(cases[i].text), a);
        if (cases[i].canonical == NULL) {
            if (rc != -1)
                fail_msg("'%s' parsed as an address", cases[i].text);
            continue;
        }
        if (rc != 0)
            fail_msg("'%s' did not parse", cases[i].text);
        assert_string_equal(cidr_addr_text(a, text, sizeof(text)), cases[i].canonical);
    }
    /* Only len bytes are read. */
    unsigned char a[16];
    char text[CIDR_ADDR_TEXT_MAX];
    assert_int_equal(cidr_addr_parse("10.0.0.1, 10.0.0.2", 8, a), 0);
    assert_string_equal(cidr_addr_text(a, text, sizeof(text)), "10.0.0.1");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_match_table),
        cmocka_unit_test(test_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
