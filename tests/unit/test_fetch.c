/* test_fetch.c — the SSRF address table, the host lists, and real fetches against
 * a small HTTP server on loopback run by this test (limits, statuses, redirects
 * followed hop by hop, the guard, allow_hosts and deny_hosts). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "failure.h"
#include "fetch.h"
#include "netaddr.h"

/* --- the address table ------------------------------------------------- */

static void test_classify_table(void **state) {
    (void)state;
    static const struct {
        const char *addr;
        enum netaddr_class want;
    } cases[] = {
        /* IPv4 */
        {"8.8.8.8", NETADDR_PUBLIC},
        {"1.1.1.1", NETADDR_PUBLIC},
        {"93.184.216.34", NETADDR_PUBLIC},
        {"0.0.0.0", NETADDR_UNSPECIFIED},
        {"0.1.2.3", NETADDR_UNSPECIFIED},
        {"127.0.0.1", NETADDR_LOOPBACK},
        {"127.255.255.254", NETADDR_LOOPBACK},
        {"10.0.0.1", NETADDR_PRIVATE},
        {"10.255.255.255", NETADDR_PRIVATE},
        {"172.16.0.1", NETADDR_PRIVATE},
        {"172.31.255.255", NETADDR_PRIVATE},
        {"172.15.255.255", NETADDR_PUBLIC},
        {"172.32.0.0", NETADDR_PUBLIC},
        {"192.168.1.1", NETADDR_PRIVATE},
        {"169.254.169.254", NETADDR_LINK_LOCAL},
        {"100.64.0.1", NETADDR_CGNAT},
        {"100.127.255.255", NETADDR_CGNAT},
        {"100.63.255.255", NETADDR_PUBLIC},
        {"100.128.0.0", NETADDR_PUBLIC},
        {"224.0.0.1", NETADDR_MULTICAST},
        {"239.255.255.250", NETADDR_MULTICAST},
        {"240.0.0.1", NETADDR_RESERVED},
        {"255.255.255.255", NETADDR_RESERVED},
        {"192.0.0.8", NETADDR_RESERVED},
        {"192.0.2.1", NETADDR_RESERVED},
        {"198.18.0.1", NETADDR_RESERVED},
        {"198.51.100.7", NETADDR_RESERVED},
        {"203.0.113.9", NETADDR_RESERVED},
        {"192.88.99.1", NETADDR_RESERVED},
        /* IPv6 */
        {"2001:4860::8888", NETADDR_PUBLIC},
        {"2606:4700:4700::1111", NETADDR_PUBLIC},
        {"::", NETADDR_UNSPECIFIED},
        {"::1", NETADDR_LOOPBACK},
        {"fe80::1", NETADDR_LINK_LOCAL},
        {"febf::1", NETADDR_LINK_LOCAL},
        {"fec0::1", NETADDR_PRIVATE},
        {"fc00::1", NETADDR_PRIVATE},
        {"fd12:3456::1", NETADDR_PRIVATE},
        {"ff02::1", NETADDR_MULTICAST},
        {"ff0e::1", NETADDR_MULTICAST},
        {"2001:db8::1", NETADDR_RESERVED},
        {"2001::1", NETADDR_RESERVED}, /* Teredo */
        {"2001:2::1", NETADDR_RESERVED},
        {"3fff::1", NETADDR_RESERVED},
        {"100::1", NETADDR_RESERVED},
        {"4000::1", NETADDR_RESERVED}, /* outside 2000::/3 */
        {"::2", NETADDR_RESERVED},     /* IPv4-compatible, deprecated */
        {"::127.0.0.1", NETADDR_RESERVED},
        /* IPv4 hidden in IPv6 */
        {"::ffff:127.0.0.1", NETADDR_LOOPBACK},
        {"::ffff:7f00:1", NETADDR_LOOPBACK},
        {"::ffff:10.1.2.3", NETADDR_PRIVATE},
        {"::ffff:169.254.169.254", NETADDR_LINK_LOCAL},
        {"::ffff:8.8.8.8", NETADDR_PUBLIC},
        {"::ffff:0:127.0.0.1", NETADDR_LOOPBACK},
        {"64:ff9b::a9fe:a9fe", NETADDR_LINK_LOCAL},
        {"64:ff9b::127.0.0.1", NETADDR_LOOPBACK},
        {"64:ff9b::8.8.8.8", NETADDR_PUBLIC},
        {"64:ff9b:1::1", NETADDR_PRIVATE},
        {"2002:a9fe:a9fe::", NETADDR_LINK_LOCAL},
        {"2002:7f00:1::1", NETADDR_LOOPBACK},
        {"2002:c0a8:101::", NETADDR_PRIVATE},
        {"2002:808:808::1", NETADDR_PUBLIC},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum netaddr_class got;
        if (netaddr_classify_text(cases[i].addr, &got) != 0) {
            print_error("%s: not parsed\n", cases[i].addr);
            bad++;
        } else if (got != cases[i].want) {
            print_error("%s: got %s, want %s\n", cases[i].addr, netaddr_class_name(got),
                        netaddr_class_name(cases[i].want));
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

static void test_classify_not_an_address(void **state) {
    (void)state;
    enum netaddr_class c;
    assert_int_equal(netaddr_classify_text("example.com", &c), -1);
    assert_int_equal(netaddr_classify_text("", &c), -1);
    assert_int_equal(netaddr_classify_text("1.2.3", &c), -1);
    struct sockaddr sa = {.sa_family = AF_UNIX};
    assert_int_equal(netaddr_classify(&sa), NETADDR_RESERVED);
}

static void test_failure_classes(void **state) {
    (void)state;
    assert_true(failure_is_transient("fetch_timeout"));
    assert_true(failure_is_transient("fetch_failed"));
    assert_true(failure_is_transient("fetch_http_503"));
    assert_true(failure_is_transient("fetch_http_429"));
    assert_false(failure_is_transient("fetch_http_404"));
    assert_false(failure_is_transient("fetch_http_403"));
    assert_false(failure_is_transient("fetch_too_large"));
    assert_false(failure_is_transient("fetch_blocked_address"));
    assert_false(failure_is_transient("fetch_too_many_redirects"));
    assert_false(failure_is_transient("fetch_blocked_host"));
    assert_false(failure_is_transient("fetch_bad_redirect"));
    assert_false(failure_is_transient("unsupported_type"));
    assert_false(failure_is_transient("too_many_pixels"));
    assert_false(failure_is_transient("decode_failed"));
    assert_true(failure_is_transient("worker_crashed"));
}

/* --- a loopback HTTP/1.1 server ---------------------------------------- */

#define BIG 5000 /* bytes, over the test's max_bytes of 1024 */

static struct {
    int fd;
    int port;
    pthread_t thread;
    pthread_mutex_t lock;
    char user_agent[128];
    int connections;
} srv = {.fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER};

static void send_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void respond(int fd, const char *status, const char *extra, const char *body, size_t len) {
    char head[1024];
    int n = snprintf(head, sizeof(head), "HTTP/1.1 %s\r\n%sContent-Length: %zu\r\n\r\n", status,
                     extra, len);
    send_all(fd, head, (size_t)n);
    send_all(fd, body, len);
}

/* Answers one request; returns 0 to keep the connection, -1 to close it. */
static int serve_request(int fd, const char *path) {
    static char big[BIG];
    memset(big, 'x', sizeof(big));
    char loc[600];
    if (strcmp(path, "/ok") == 0) {
        respond(fd, "200 OK", "Content-Type: image/png\r\n", "hello world", 11);
    } else if (strcmp(path, "/big-length") == 0) {
        respond(fd, "200 OK", "", big, sizeof(big));
    } else if (strcmp(path, "/big-stream") == 0) {
        const char *head = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
        send_all(fd, head, strlen(head));
        for (int i = 0; i < 10; i++)
            send_all(fd, big, 500);
        return -1;
    } else if (strcmp(path, "/404") == 0) {
        respond(fd, "404 Not Found", "", "nope", 4);
    } else if (strcmp(path, "/503") == 0) {
        respond(fd, "503 Service Unavailable", "", "busy", 4);
    } else if (strncmp(path, "/redir/", 7) == 0) {
        int n = atoi(path + 7);
        if (n <= 0)
            snprintf(loc, sizeof(loc), "Location: /ok\r\n");
        else
            snprintf(loc, sizeof(loc), "Location: /redir/%d\r\n", n - 1);
        respond(fd, "302 Found", loc, "moved\n", 6); /* a body the fetch must drop */
    } else if (strncmp(path, "/slow-redir/", 12) == 0) {
        int n = atoi(path + 12);
        usleep(150 * 1000);
        if (n <= 0)
            snprintf(loc, sizeof(loc), "Location: /ok\r\n");
        else
            snprintf(loc, sizeof(loc), "Location: /slow-redir/%d\r\n", n - 1);
        respond(fd, "302 Found", loc, "", 0);
    } else if (strncmp(path, "/r/", 3) == 0 && strlen(path) > 7) {
        /* /r/<status>/<location>: that status with that Location */
        char status[32];
        snprintf(status, sizeof(status), "%.3s Redirect", path + 3);
        snprintf(loc, sizeof(loc), "Location: %s\r\n", path + 7);
        respond(fd, status, loc, "", 0);
    } else if (strcmp(path, "/no-location") == 0) {
        respond(fd, "302 Found", "", "", 0);
    } else if (strcmp(path, "/to-ftp") == 0) {
        respond(fd, "302 Found", "Location: ftp://127.0.0.1/x\r\n", "", 0);
    } else if (strcmp(path, "/stall") == 0) {
        sleep(2);
        return -1;
    } else {
        respond(fd, "400 Bad Request", "", "", 0);
    }
    return 0;
}

static void *serve_connection(void *arg) {
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    size_t have = 0;
    for (;;) {
        ssize_t r = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
        if (r <= 0)
            break;
        have += (size_t)r;
        buf[have] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end == NULL) {
            if (have == sizeof(buf) - 1)
                break;
            continue;
        }
        char path[512] = "";
        sscanf(buf, "GET %511s", path);
        const char *ua = strcasestr(buf, "\r\nUser-Agent: ");
        if (ua) {
            pthread_mutex_lock(&srv.lock);
            sscanf(ua + 14, "%127[^\r]", srv.user_agent);
            pthread_mutex_unlock(&srv.lock);
        }
        size_t used = (size_t)(end + 4 - buf);
        memmove(buf, buf + used, have - used);
        have -= used;
        if (serve_request(fd, path) < 0)
            break;
    }
    close(fd);
    return NULL;
}

static void *accept_loop(void *arg) {
    (void)arg;
    for (;;) {
        int c = accept(srv.fd, NULL, NULL);
        if (c < 0)
            return NULL;
        pthread_mutex_lock(&srv.lock);
        srv.connections++;
        pthread_mutex_unlock(&srv.lock);
        pthread_t t;
        pthread_create(&t, NULL, serve_connection, (void *)(intptr_t)c);
        pthread_detach(t);
    }
}

static int server_start(void **state) {
    (void)state;
    srv.fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (srv.fd < 0 || bind(srv.fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        listen(srv.fd, 16) < 0 || getsockname(srv.fd, (struct sockaddr *)&a, &len) < 0)
        return -1;
    srv.port = ntohs(a.sin_port);
    return pthread_create(&srv.thread, NULL, accept_loop, NULL);
}

static int server_stop(void **state) {
    (void)state;
    shutdown(srv.fd, SHUT_RDWR);
    close(srv.fd);
    pthread_join(srv.thread, NULL);
    return 0;
}

/* --- fetches ------------------------------------------------------------ */

static struct fetch_opts test_opts(bool allow_private) {
    struct fetch_opts o = {
        .connect_timeout_ms = 1000,
        .timeout_ms = 3000,
        .max_bytes = 1024,
        .max_redirects = 3,
        .allow_private = allow_private,
    };
    return o;
}

static void url_for(char *buf, size_t n, const char *host, const char *path) {
    snprintf(buf, n, "http://%s:%d%s", host, srv.port, path);
}

static struct failure last_err; /* of the latest expect_at() */

/* Fetches path from host, expecting code (NULL: success). Returns the body
 * length; a failure's message must name host. */
static size_t expect_at(struct fetch *f, const struct fetch_opts *o, const char *host,
                        const char *path, const char *code) {
    char url[640];
    url_for(url, sizeof(url), host, path);
    struct fetch_body body;
    struct failure err = {0};
    int rc = fetch_url(f, o, url, &body, &err);
    last_err = err;
    if (code == NULL) {
        if (rc != 0)
            fail_msg("%s%s: expected success, got %s: %s", host, path, err.code, err.message);
        size_t len = body.len;
        fetch_body_free(&body);
        return len;
    }
    if (rc != -1 || strcmp(err.code, code) != 0)
        fail_msg("%s%s: expected %s, got rc %d %s: %s", host, path, code, rc, err.code,
                 err.message);
    assert_null(body.data);
    if (strstr(err.message, host) == NULL)
        fail_msg("%s%s: the message does not name the host: %s", host, path, err.message);
    return 0;
}

static size_t expect(struct fetch *f, const struct fetch_opts *o, const char *path,
                     const char *code) {
    return expect_at(f, o, "127.0.0.1", path, code);
}

static int connections(void) {
    pthread_mutex_lock(&srv.lock);
    int n = srv.connections;
    pthread_mutex_unlock(&srv.lock);
    return n;
}

/* last_err.message contains s. */
static void assert_message_has(const char *s) {
    if (strstr(last_err.message, s) == NULL)
        fail_msg("'%s' not in the message: %s", s, last_err.message);
}

static void test_fetch_ok(void **state) {
    (void)state;
    struct fetch *f = fetch_new();
    assert_non_null(f);
    struct fetch_opts o = test_opts(true);
    char url[256];
    url_for(url, sizeof(url), "127.0.0.1", "/ok");
    struct fetch_body body;
    struct failure err = {0};
    assert_int_equal(fetch_url(f, &o, url, &body, &err), 0);
    assert_int_equal(body.len, 11);
    assert_memory_equal(body.data, "hello world", 11);
    fetch_body_free(&body);
    pthread_mutex_lock(&srv.lock);
    assert_true(strncmp(srv.user_agent, "thumbnailed/", 12) == 0);
    pthread_mutex_unlock(&srv.lock);
    fetch_free(f);
}

static void test_fetch_errors(void **state) {
    (void)state;
    struct fetch *f = fetch_new();
    struct fetch_opts o = test_opts(true);
    expect(f, &o, "/404", "fetch_http_404");
    expect(f, &o, "/503", "fetch_http_503");
    expect(f, &o, "/big-length", "fetch_too_large");
    expect(f, &o, "/big-stream", "fetch_too_large"); /* no Content-Length: caught while streaming */
    assert_int_equal(expect(f, &o, "/redir/2", NULL), 11); /* 3 hops: /redir/1, /redir/0, /ok */
    expect(f, &o, "/redir/3", "fetch_too_many_redirects");
    expect(f, &o, "/to-ftp", "fetch_bad_redirect");
    o.max_redirects = 0;
    expect(f, &o, "/redir/0", "fetch_too_many_redirects");
    o = test_opts(true);
    o.timeout_ms = 300;
    expect(f, &o, "/stall", "fetch_timeout");
    o.max_bytes = 11; /* exactly the body: allowed */
    o.timeout_ms = 3000;
    assert_int_equal(expect(f, &o, "/ok", NULL), 11);
    fetch_free(f);
}

static void test_fetch_refused_port(void **state) {
    (void)state;
    /* A port nothing listens on (bound, not listening). */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", ntohs(a.sin_port));
    struct fetch *f = fetch_new();
    struct fetch_opts o = test_opts(true);
    struct fetch_body body;
    struct failure err = {0};
    assert_int_equal(fetch_url(f, &o, url, &body, &err), -1);
    assert_string_equal(err.code, "fetch_failed");
    fetch_free(f);
    close(s);
}

static void test_fetch_blocked(void **state) {
    (void)state;
    struct fetch *f = fetch_new();
    struct fetch_opts o = test_opts(false);
    expect(f, &o, "/ok", "fetch_blocked_address");

    char url[256];
    struct fetch_body body;
    struct failure err = {0};
    url_for(url, sizeof(url), "localhost", "/ok");
    assert_int_equal(fetch_url(f, &o, url, &body, &err), -1);
    assert_string_equal(err.code, "fetch_blocked_address");
    assert_non_null(strstr(err.message, "loopback"));
    assert_non_null(strstr(err.message, "localhost"));

    url_for(url, sizeof(url), "[::ffff:127.0.0.1]", "/ok");
    assert_int_equal(fetch_url(f, &o, url, &body, &err), -1);
    assert_string_equal(err.code, "fetch_blocked_address");

    /* Credentials in the URL never reach the message. */
    url_for(url, sizeof(url), "user:s3cret@127.0.0.1", "/ok");
    assert_int_equal(fetch_url(f, &o, url, &body, &err), -1);
    assert_null(strstr(err.message, "s3cret"));
    fetch_free(f);
}

/* A connection kept alive while private addresses were allowed is not reused
 * once they are not. */
static void test_policy_change_drops_connections(void **state) {
    (void)state;
    struct fetch *f = fetch_new();
    struct fetch_opts open = test_opts(true), closed = test_opts(false);
    pthread_mutex_lock(&srv.lock);
    int before = srv.connections;
    pthread_mutex_unlock(&srv.lock);
    expect(f, &open, "/ok", NULL);
    expect(f, &open, "/ok", NULL);
    pthread_mutex_lock(&srv.lock);
    assert_int_equal(srv.connections - before, 1); /* kept alive and reused */
    pthread_mutex_unlock(&srv.lock);
    expect(f, &closed, "/ok", "fetch_blocked_address");
    expect(f, &open, "/ok", NULL);
    fetch_free(f);
}

/* --- host lists and redirects -------------------------------------------- */

static void test_host_listed(void **state) {
    (void)state;
    static const struct {
        const char *list;
        const char *host;
        int port;
        bool want;
    } cases[] = {
        {"example.com", "example.com", 443, true},
        {"example.com", "img.example.com", 80, true},
        {"example.com", "a.b.example.com", 80, true},
        {"example.com", "EXAMPLE.Com.", 80, true},
        {"Example.COM.", "img.example.com", 80, true},
        {"example.com", "badexample.com", 80, false},
        {"example.com", "example.com.evil.test", 80, false},
        {"example.com", "com", 80, false},
        {"img.example.com", "example.com", 80, false},
        {".example.com", "example.com", 80, true},
        {"*.example.com", "x.example.com", 80, true},
        {"a.test  example.com\tb.test", "www.example.com", 80, true},
        {"a.test,example.com", "example.com", 80, true},
        {"a.test b.test", "example.com", 80, false},
        {"", "example.com", 80, false},
        {"   ", "example.com", 80, false},
        {"127.0.0.1", "127.0.0.1", 80, true},
        {"127.0.0.1", "127.0.0.2", 80, false},
        {"127.0.0.1", "[::ffff:127.0.0.1]", 80, true},
        {"::1", "[::1]", 80, true},
        {"[::1]", "[0:0::1]", 80, true},
        {"[::1]", "[::2]", 80, false},
        {"0.0.1", "127.0.0.1", 80, false},             /* no suffix matching of addresses */
        {"1.2.3.4", "1.2.3.4.example.com", 80, false}, /* a name, not the address */
        {"example.com", "93.184.216.34", 80, false},
        {"localhost", "localhost", 80, true},
        /* A port-less entry matches every port, an unknown one (0) included. */
        {"example.com", "example.com", 8080, true},
        {"127.0.0.1", "127.0.0.1", 0, true},
        /* An entry with a port matches that port only. */
        {"example.com:8080", "example.com", 8080, true},
        {"example.com:8080", "img.example.com", 8080, true},
        {"example.com:8080", "example.com", 8081, false},
        {"example.com:8080", "example.com", 80, false},
        {"example.com:8080", "example.com", 0, false},
        {"example.com:443", "example.com", 443, true},
        {"*.example.com:81", "x.example.com", 81, true},
        {"127.0.0.1:9000", "127.0.0.1", 9000, true},
        {"127.0.0.1:9000", "[::ffff:127.0.0.1]", 9000, true},
        {"127.0.0.1:9000", "127.0.0.1", 9001, false},
        {"[::1]:9000", "[::1]", 9000, true},
        {"[::1]:9000", "[::1]", 9001, false},
        {"[::1]:9000", "127.0.0.1", 9000, false},
        {"::1:9000", "[::1:9000]", 80, true}, /* bare: an IPv6 literal, never a port */
        {"::1:9000", "[::1]", 9000, false},
        {"a.test:1 example.com:2 example.com:3", "example.com", 3, true},
        {"example.com:2 example.com", "example.com", 9, true},
        /* Malformed entries match nothing. */
        {"example.com:", "example.com", 80, false},
        {"example.com:0", "example.com", 0, false},
        {"example.com:70000", "example.com", 70000, false},
        {"example.com:8x", "example.com", 8, false},
        {"[::1", "[::1]", 80, false},
        {"[::1]9000", "[::1]", 9000, false},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (hostlist_match(cases[i].list, cases[i].host, cases[i].port) != cases[i].want) {
            print_error("'%s' port %d on '%s': want %d\n", cases[i].host, cases[i].port,
                        cases[i].list, cases[i].want);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
    assert_false(hostlist_match(NULL, "example.com", 80));
    assert_false(hostlist_match("example.com", NULL, 80));
}

/* The port a URL is matched with: its own, else its scheme's. */
static void test_host_listed_url(void **state) {
    (void)state;
    static const struct {
        const char *list;
        const char *url;
        bool want;
    } cases[] = {
        {"example.com:80", "http://example.com/x", true},
        {"example.com:443", "https://example.com/x", true},
        {"example.com:443", "http://example.com/x", false},
        {"example.com:8443", "https://example.com:8443/x", true},
        {"example.com:8443", "https://example.com/x", false},
        {"example.com", "https://user:pw@img.example.com:9999/x", true},
        {"[::1]:8080", "http://[::1]:8080/", true},
        {"[::1]:8080", "http://[::1]/", false},
        {"127.0.0.1:8080", "http://127.1:8080/", true},
        {"127.0.0.1:8080", "not a url", false},
        {"example.com", "http:///x", false},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (hostlist_match_url(cases[i].list, cases[i].url) != cases[i].want) {
            print_error("'%s' on '%s': want %d\n", cases[i].url, cases[i].list, cases[i].want);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
    char host[256];
    int port = -1;
    assert_int_equal(hostlist_url_host("https://Example.COM/x", host, sizeof(host), &port), 0);
    assert_int_equal(port, 443);
    assert_int_equal(hostlist_url_host("http://[::1]:81/", host, sizeof(host), &port), 0);
    assert_string_equal(host, "[::1]");
    assert_int_equal(port, 81);
    assert_int_equal(hostlist_url_host("http://x.test/", host, sizeof(host), NULL), 0);
}

/* What the configuration accepts for a list, with and without ports. */
static void test_host_list_syntax(void **state) {
    (void)state;
    static const struct {
        const char *list;
        bool ports;
        bool ok;
    } cases[] = {
        {"", true, true},
        {"example.com *.example.com .example.com 127.0.0.1 ::1 [::1] 2001:db8::7", false, true},
        {"example.com:8080 127.0.0.1:1 [::1]:65535 [2001:db8::7]:443", true, true},
        {"a.test,b.test:80", true, true},
        {"example.com:8080", false, false}, /* deny_hosts: no port */
        {"[::1]:80", false, false},
        {"example.com:", true, false},
        {"example.com:0", true, false},
        {"example.com:65536", true, false},
        {"example.com:http", true, false},
        {":80", true, false},
        {"[::1", true, false},
        {"[::1]80", true, false},
        {"[example.com]:80", true, false},
        {"[]:80", true, false},
        {"a:b:c", true, false}, /* neither an IPv6 literal nor host:port */
        {"http://example.com", true, false},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char why[256] = "";
        bool ok = hostlist_check(cases[i].list, cases[i].ports, why, sizeof(why)) == 0;
        if (ok != cases[i].ok || (!ok && why[0] == '\0')) {
            print_error("'%s' (ports %d): want %s, got %s (%s)\n", cases[i].list, cases[i].ports,
                        cases[i].ok ? "ok" : "refused", ok ? "ok" : "refused", why);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

static void test_deny_hosts(void **state) {
    (void)state;
    struct fetch *f = fetch_new();
    struct fetch_opts o = test_opts(true);
    int before = connections();
    o.deny_hosts = "example.com";
    expect_at(f, &o, "example.com", "/ok", "fetch_blocked_host");
    expect_at(f, &o, "img.example.com", "/ok", "fetch_blocked_host");
    assert_message_has("deny");
    assert_int_equal(connections(), before);          /* refused before any connection */
    assert_int_equal(expect(f, &o, "/ok", NULL), 11); /* other hosts unaffected */

    /* An IP literal, however the URL spells the address. */
    o.deny_hosts = "other.test 127.0.0.1";
    expect(f, &o, "/ok", "fetch_blocked_host");
    char url[256];
    struct fetch_body body;
    struct failure err = {0};
    static const char *const spellings[] = {"0x7f000001", "127.1", "[::ffff:127.0.0.1]"};
    for (size_t i = 0; i < sizeof(spellings) / sizeof(spellings[0]); i++) {
        snprintf(url, sizeof(url), "http://%s:%d/ok", spellings[i], srv.port);
        assert_int_equal(fetch_url(f, &o, url, &body, &err), -1);
        assert_string_equal(err.code, "fetch_blocked_host");
    }

    /* Denied wins over allowed. */
    o = test_opts(false);
    o.allow_hosts = "127.0.0.1";
    o.deny_hosts = "127.0.0.1";
    expect(f, &o, "/ok", "fetch_blocked_host");

    /* A redirect to a denied host (or a subdomain of one), with and without
     * credentials in the Location. */
    o = test_opts(true);
    o.deny_hosts = "localhost";
    char path[256];
    snprintf(path, sizeof(path), "/r/302/http://img.localhost:%d/ok", srv.port);
    expect(f, &o, path, "fetch_blocked_host");
    assert_message_has("img.localhost");
    assert_message_has("redirected from 127.0.0.1");
    snprintf(path, sizeof(path), "/r/307/http://user:s3cret@LOCALHOST.:%d/ok", srv.port);
    expect(f, &o, path, "fetch_blocked_host");
    assert_null(strstr(last_err.message, "s3cret"));
    fetch_free(f);
}

static void test_allow_hosts(void **state) {
    (void)state;
    struct fetch *f = fetch_new();
    struct fetch_opts o = test_opts(false);
    o.allow_hosts = "internal.test 127.0.0.1";
    assert_int_equal(expect(f, &o, "/ok", NULL), 11);
    assert_int_equal(expect(f, &o, "/redir/2", NULL), 11); /* same host throughout */

    /* A redirect from the allowed host to loopback names it does not cover. */
    char path[256];
    snprintf(path, sizeof(path), "/r/302/http://localhost:%d/ok", srv.port);
    expect(f, &o, path, "fetch_blocked_address");
    assert_message_has("loopback");
    assert_message_has("localhost");
    assert_message_has("redirected from 127.0.0.1");
    snprintf(path, sizeof(path), "/r/301/http://127.0.0.2:%d/ok", srv.port);
    expect(f, &o, path, "fetch_blocked_address");
    assert_message_has("127.0.0.2 (loopback address)");
    snprintf(path, sizeof(path), "/r/308/http://[::ffff:127.0.0.1]:%d/ok", srv.port);
    assert_int_equal(expect(f, &o, path, NULL), 11); /* the allowed address, spelt otherwise */

    /* Allowed by name; its redirect to the bare address is not. */
    o.allow_hosts = "localhost";
    assert_int_equal(expect_at(f, &o, "localhost", "/ok", NULL), 11);
    snprintf(path, sizeof(path), "/r/302/http://127.0.0.1:%d/ok", srv.port);
    expect_at(f, &o, "localhost", path, "fetch_blocked_address");
    assert_message_has(
        "127.0.0.1 (loopback address) for host 127.0.0.1, redirected from localhost");
    fetch_free(f);
}

/* An allow_hosts entry with a port allows that port only: the same host on
 * another port, first or after a redirect, keeps the guard. */
static void test_allow_hosts_port(void **state) {
    (void)state;
    struct fetch *f = fetch_new();
    struct fetch_opts o = test_opts(false);
    char list[128], path[256];
    snprintf(list, sizeof(list), "127.0.0.1:%d", srv.port);
    o.allow_hosts = list;
    assert_int_equal(expect(f, &o, "/ok", NULL), 11);
    assert_int_equal(expect(f, &o, "/redir/1", NULL), 11); /* the same host and port */

    int before = connections();
    snprintf(list, sizeof(list), "127.0.0.1:%d", srv.port == 65535 ? 1 : srv.port + 1);
    expect(f, &o, "/ok", "fetch_blocked_address");
    assert_message_has("loopback");
    assert_int_equal(connections(), before); /* refused before connecting */

    /* A redirect from an allowed host and port to another port of a host
     * allowed on the first port only. */
    snprintf(list, sizeof(list), "localhost:%d 127.0.0.1:%d", srv.port, srv.port);
    snprintf(path, sizeof(path), "/r/302/http://127.0.0.1:%d/ok", srv.port);
    assert_int_equal(expect_at(f, &o, "localhost", path, NULL), 11);
    snprintf(path, sizeof(path), "/r/302/http://127.0.0.1:%d/ok",
             srv.port == 65535 ? 1 : srv.port + 1);
    expect_at(f, &o, "localhost", path, "fetch_blocked_address");
    assert_message_has("for host 127.0.0.1, redirected from localhost");

    /* A deny entry takes no port (the configuration refuses one) and denies
     * the host on every port. */
    o = test_opts(true);
    o.deny_hosts = "127.0.0.1";
    expect(f, &o, "/ok", "fetch_blocked_host");
    fetch_free(f);
}

/* A connection kept alive for an allowed host is not reused once the host is
 * no longer allowed. */
static void test_allow_hosts_change_drops_connections(void **state) {
    (void)state;
    struct fetch *f = fetch_new();
    struct fetch_opts allowed = test_opts(false), plain = test_opts(false);
    allowed.allow_hosts = "127.0.0.1";
    int before = connections();
    expect(f, &allowed, "/ok", NULL);
    expect(f, &allowed, "/ok", NULL);
    assert_int_equal(connections() - before, 1);
    expect(f, &plain, "/ok", "fetch_blocked_address");
    expect(f, &allowed, "/ok", NULL);
    fetch_free(f);
}

static void test_redirects(void **state) {
    (void)state;
    struct fetch *f = fetch_new();
    struct fetch_opts o = test_opts(true);
    char path[512];

    /* Hops share one kept-alive connection; redirect bodies are dropped. */
    expect(f, &o, "/ok", NULL);
    int before = connections();
    assert_int_equal(expect(f, &o, "/redir/2", NULL), 11);
    assert_int_equal(connections(), before);

    static const char *const followed[] = {"301", "302", "303", "307", "308"};
    for (size_t i = 0; i < sizeof(followed) / sizeof(followed[0]); i++) {
        snprintf(path, sizeof(path), "/r/%s//ok", followed[i]);
        assert_int_equal(expect(f, &o, path, NULL), 11);
    }
    expect(f, &o, "/r/300//ok", "fetch_failed"); /* not a redirect we follow */
    snprintf(path, sizeof(path), "/r/302///localhost:%d/ok", srv.port); /* scheme-relative */
    assert_int_equal(expect(f, &o, path, NULL), 11);

    /* Other schemes and broken Locations. */
    expect(f, &o, "/r/302/ftp://127.0.0.1/x", "fetch_bad_redirect");
    assert_message_has("scheme ftp");
    expect(f, &o, "/r/302/file:///etc/passwd", "fetch_bad_redirect");
    assert_message_has("scheme file");
    expect(f, &o, "/r/301/gopher://127.0.0.1/x", "fetch_bad_redirect");
    expect(f, &o, "/no-location", "fetch_bad_redirect");
    expect(f, &o, "/r/302/http://[::1", "fetch_bad_redirect");
    /* A host too long to be a DNS name is refused, not matched cut short. */
    char longhost[300];
    memset(longhost, 'a', 270);
    snprintf(longhost + 270, sizeof(longhost) - 270, ".test");
    snprintf(path, sizeof(path), "/r/302/http://%s/ok", longhost);
    expect(f, &o, path, "fetch_bad_redirect");

    /* The limit counts hops across hosts. */
    o.max_redirects = 1;
    snprintf(path, sizeof(path), "/r/302/http://localhost:%d/redir/0", srv.port);
    expect(f, &o, path, "fetch_too_many_redirects");
    o.max_redirects = 2;
    assert_int_equal(expect(f, &o, path, NULL), 11);

    /* The timeout covers the whole chain: each hop takes 150 ms, 5 of them. */
    o = test_opts(true);
    o.max_redirects = 5;
    o.timeout_ms = 400;
    expect(f, &o, "/slow-redir/4", "fetch_timeout");
    o.timeout_ms = 3000;
    assert_int_equal(expect(f, &o, "/slow-redir/4", NULL), 11);
    fetch_free(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify_table),
        cmocka_unit_test(test_classify_not_an_address),
        cmocka_unit_test(test_failure_classes),
        cmocka_unit_test(test_fetch_ok),
        cmocka_unit_test(test_fetch_errors),
        cmocka_unit_test(test_fetch_refused_port),
        cmocka_unit_test(test_fetch_blocked),
        cmocka_unit_test(test_policy_change_drops_connections),
        cmocka_unit_test(test_host_listed),
        cmocka_unit_test(test_host_listed_url),
        cmocka_unit_test(test_host_list_syntax),
        cmocka_unit_test(test_deny_hosts),
        cmocka_unit_test(test_allow_hosts),
        cmocka_unit_test(test_allow_hosts_port),
        cmocka_unit_test(test_allow_hosts_change_drops_connections),
        cmocka_unit_test(test_redirects),
    };
    return cmocka_run_group_tests(tests, server_start, server_stop);
}
