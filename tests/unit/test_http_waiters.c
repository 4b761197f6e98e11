/* test_http_waiters.c — the long-poll waiter table: several waiters per id,
 * lookups that find exactly theirs, removal in any order and from inside the
 * iteration, and many ids sharing buckets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "waiters.h"

#define N 2000

struct item {
    struct waiter w;
    int seen;
};

static struct item *item_of(struct waiter *w) {
    return (struct item *)((char *)w - offsetof(struct item, w));
}

static void mark(struct waiter *w, void *arg) {
    (void)arg;
    item_of(w)->seen++;
}

static void mark_and_remove(struct waiter *w, void *arg) {
    item_of(w)->seen++;
    waiters_remove(arg, w);
}

static void id_of(int i, char out[ID_LEN + 1]) {
    snprintf(out, ID_LEN + 1, "%022d", i);
}

static void test_add_find_remove(void **state) {
    (void)state;
    struct waiters t;
    assert_int_equal(waiters_init(&t, 10), 0);
    struct item a = {0}, b = {0}, c = {0};
    assert_false(waiters_registered(&a.w));
    waiters_add(&t, &a.w, "AAAAAAAAAAAAAAAAAAAAAA");
    waiters_add(&t, &b.w, "AAAAAAAAAAAAAAAAAAAAAA");
    waiters_add(&t, &c.w, "BBBBBBBBBBBBBBBBBBBBBB");
    assert_true(waiters_registered(&a.w));
    assert_int_equal(t.count, 3);
    assert_int_equal(waiters_each_of(&t, "AAAAAAAAAAAAAAAAAAAAAA", ID_LEN, mark, NULL), 2);
    assert_int_equal(a.seen + b.seen + c.seen, 2);
    assert_int_equal(c.seen, 0);
    /* a prefix, a longer string, an unknown id: nobody */
    assert_int_equal(waiters_each_of(&t, "AAAAAAAAAAAAAAAAAAAAA", ID_LEN - 1, mark, NULL), 0);
    assert_int_equal(waiters_each_of(&t, "AAAAAAAAAAAAAAAAAAAAAAA", ID_LEN + 1, mark, NULL), 0);
    assert_int_equal(waiters_each_of(&t, "CCCCCCCCCCCCCCCCCCCCCC", ID_LEN, mark, NULL), 0);
    waiters_remove(&t, &a.w);
    waiters_remove(&t, &a.w); /* twice: nothing */
    assert_false(waiters_registered(&a.w));
    assert_int_equal(t.count, 2);
    assert_int_equal(waiters_each_of(&t, "AAAAAAAAAAAAAAAAAAAAAA", ID_LEN, mark, NULL), 1);
    assert_int_equal(b.seen, 2);
    assert_int_equal(waiters_each(&t, mark_and_remove, &t), 2);
    assert_int_equal(t.count, 0);
    assert_int_equal(waiters_each(&t, mark, NULL), 0);
    waiters_add(&t, &a.w, "AAAAAAAAAAAAAAAAAAAAAA"); /* again after removal */
    assert_int_equal(waiters_each_of(&t, "AAAAAAAAAAAAAAAAAAAAAA", ID_LEN, mark, NULL), 1);
    waiters_free(&t);
}

static struct item many[N];

static void test_many(void **state) {
    (void)state;
    struct waiters t;
    assert_int_equal(waiters_init(&t, 64), 0); /* far more waiters than buckets */
    char id[ID_LEN + 1];
    memset(many, 0, sizeof(many));
    for (int i = 0; i < N; i++) {
        id_of(i % (N / 4), id); /* four waiters per id */
        waiters_add(&t, &many[i].w, id);
    }
    assert_int_equal(t.count, N);
    for (int k = 0; k < N / 4; k++) {
        id_of(k, id);
        assert_int_equal(waiters_each_of(&t, id, ID_LEN, mark_and_remove, &t), 4);
        assert_int_equal(waiters_each_of(&t, id, ID_LEN, mark, NULL), 0);
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(many[i].seen, 1);
    assert_int_equal(t.count, 0);
    /* Removal in reverse order of insertion, then the table is empty. */
    for (int i = 0; i < N; i++) {
        id_of(i, id);
        waiters_add(&t, &many[i].w, id);
    }
    for (int i = N - 1; i >= 0; i--)
        waiters_remove(&t, &many[i].w);
    assert_int_equal(t.count, 0);
    assert_int_equal(waiters_each(&t, mark, NULL), 0);
    waiters_free(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_find_remove),
        cmocka_unit_test(test_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
