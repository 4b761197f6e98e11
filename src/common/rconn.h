/* rconn.h — the one Redis client: where Redis is (the embedded server's socket
 * or redis.url), how a connection is opened (timeouts, AUTH, SELECT), and a
 * blocking connection with capped reconnect backoff, an outage logged once and
 * its recovery once, and one policy for what a failed command does to the
 * connection. The master, the workers and the delivery child use the blocking
 * form; the http children's asynchronous client (src/http/core/rasync.c)
 * opens its connections, classifies its errors and backs off through the same
 * functions. docs/ARCHITECTURE.md §8. */
#ifndef TH_RCONN_H
#define TH_RCONN_H

#include "config.h"
#include "queue.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

/* Where Redis is. */
struct rconn_sentinel {
    char host[256];
    int port;
};

struct rconn_target {
    char unix_path[512]; /* non-empty for a unix socket */
    char host[256];
    int port;
    int db;
    char username[128]; /* an ACL user, or "" (AUTH password alone) */
    char password[256];
    /* Sentinel mode (nsentinels > 0): host and port are found by asking the
     * Sentinels for master_name on every connect (rconn_discover). */
    int nsentinels;
    struct rconn_sentinel sentinels[CONFIG_SENTINELS_MAX];
    char master_name[128];
    char sentinel_password[256];
    long sentinel_timeout_ms; /* each Sentinel, and the check of its answer */
};

/* How long one Sentinel (and the check of the master it names) may take at
 * most, whatever redis.connect_timeout: discovery runs in the caller's thread,
 * an http child's loop included, so it is kept short. */
#define RCONN_SENTINEL_TIMEOUT_MAX_MS 250

/* Asks t's Sentinels in turn for the master's address and checks that it
 * says it is the master (ROLE); fills host and port. Returns 0, or -1 with
 * why in err (every Sentinel's answer, or that the one named is no master). */
int rconn_discover(const struct rconn_target *t, char *host, size_t hostlen, int *port, char *err,
                   size_t n);

/* Whether a ROLE reply says master. */
bool rconn_role_is_master(const redisReply *reply);

/* The retry schedule of every client, after a lost connection and a refusal
 * alike: the first retry after about RCONN_BACKOFF_MIN_MS, doubling to
 * RCONN_BACKOFF_MAX_MS, each delay jittered by +-20 % (never above the cap) so
 * that many processes do not retry in step. */
#define RCONN_BACKOFF_MIN_MS 50
#define RCONN_BACKOFF_MAX_MS 1000

/* The delay after prev (0: the first failure of an outage). */
long rconn_backoff_next(long prev_ms);

/* Resolves cfg's target: the embedded server's socket in daemon.runtime_dir, or
 * redis.url (redis://[:password@]host[:port][/db] or unix:/path) with
 * redis.password. Returns 0, or -1 when the URL cannot be used. */
int rconn_resolve(const struct config *cfg, struct rconn_target *t);

/* The embedded server's socket path for cfg into buf. */
void rconn_embedded_socket(const struct config *cfg, char *buf, size_t n);

/* Opens a blocking connection to t within timeout_ms (in sentinel mode to
 * the master the Sentinels name, checked with ROLE), authenticates and
 * selects the database. Returns the context (the caller frees it with
 * redisFree), or NULL with a reason in err. */
redisContext *rconn_open(const struct rconn_target *t, long timeout_ms, char *err, size_t n);

/* Starts an asynchronous connection to t (hiredis async; the caller attaches
 * it to its loop and sends the handshake with rconn_handshake_args). In
 * sentinel mode the master is found first (rconn_discover, blocking, at most
 * RCONN_SENTINEL_TIMEOUT_MAX_MS per Sentinel). Returns the context, or NULL
 * with a reason in err. */
redisAsyncContext *rconn_open_async(const struct rconn_target *t, char *err, size_t n);

/* Sends AUTH and SELECT when t needs them, on any connection type, through
 * send(argc, argv, arg); in sentinel mode ROLE last (check its reply with
 * rconn_role_is_master). */
void rconn_handshake_args(const struct rconn_target *t,
                          void (*send)(int argc, const char **argv, void *arg), void *arg);

/* What a failed command means, for every client alike. */
enum rconn_fault {
    RCONN_OK,      /* a reply that is not an error */
    RCONN_LOST,    /* no reply: the connection closed, failed or timed out */
    RCONN_REFUSED, /* Redis is up but refuses for now (the reasons below) */
    RCONN_ERROR,   /* any other error reply: a script or programming error */
};

/* Why, one step finer: the reason counted in /metrics and told to clients. */
enum rconn_reason {
    RCONN_REASON_NONE,       /* RCONN_OK */
    RCONN_REASON_LOST,       /* RCONN_LOST */
    RCONN_REASON_OOM,        /* maxmemory reached (noeviction) */
    RCONN_REASON_MISCONF,    /* its disk: the AOF or a snapshot cannot be written */
    RCONN_REASON_READONLY,   /* a replica (after a failover, the old primary) */
    RCONN_REASON_NOREPLICAS, /* min-replicas-to-write not met */
    RCONN_REASON_BUSY,       /* a long script runs */
    RCONN_REASON_LOADING,    /* loading its data at start-up */
    RCONN_REASON_MASTERDOWN, /* a replica that lost its primary */
    RCONN_REASON_TRYAGAIN,   /* TRYAGAIN, CLUSTERDOWN */
    RCONN_REASON_ERROR,      /* RCONN_ERROR */
    RCONN_REASONS
};

/* The reason of reply (NULL: RCONN_REASON_LOST). */
enum rconn_reason rconn_reason_of(const redisReply *reply);

/* The class of a reason, and of reply (NULL: RCONN_LOST). */
enum rconn_fault rconn_fault_of(enum rconn_reason reason);
enum rconn_fault rconn_classify(const redisReply *reply);

/* A reason's name in /metrics and logs: "lost", "oom", "misconf", ... */
const char *rconn_reason_name(enum rconn_reason reason);

/* Whether reason refuses writes only (the store is full or read-only), as
 * opposed to refusing everything for a while. */
bool rconn_reason_refuses_writes(enum rconn_reason reason);

/* What a process's Redis clients have seen, kept where every process of the
 * node sees it (the shared segment's header): refusals by reason, and when
 * Redis last accepted or refused a write (a script: every script writes). */
struct rconn_health {
    _Atomic uint64_t faults[RCONN_REASONS]; /* failed commands by reason */
    _Atomic int64_t write_ok_ms;            /* monotonic; 0 = never */
    _Atomic int64_t write_refused_ms;       /* monotonic; 0 = never */
    _Atomic int32_t write_refused_reason;   /* enum rconn_reason of the last refusal */
};

/* Sets where this process counts (NULL: nowhere). Every client of the process
 * reports there, blocking and asynchronous alike. */
void rconn_health_attach(struct rconn_health *h);

/* Reports the outcome of one command (reply NULL: lost; script: it was a
 * script call). Called by the clients themselves. */
void rconn_health_note(const redisReply *reply, bool script);

/* Whether Redis refuses writes now: its last answer to a write was a refusal
 * (reason set), not an acceptance. False without a health record. */
bool rconn_health_refusing(const struct rconn_health *h, enum rconn_reason *reason);

/* One blocking connection with its reconnect state. After any failure (the
 * connection lost, a refusal or an error reply) the connection is dropped and
 * the next connect waits out the backoff; the first failure of an outage is
 * logged as a warning (an error reply as an error), the rest at debug level,
 * and the first success after it once. */
struct rconn {
    struct rconn_target target;
    char who[32];                  /* the log's name for the user: "master", "worker"... */
    long connect_timeout_ms;       /* redis.connect_timeout */
    long command_timeout_ms;       /* a reply waited for at most this long */
    redisContext *c;               /* NULL while disconnected */
    bool down;                     /* an outage was logged and has not recovered */
    int64_t down_since_ms;         /* monotonic */
    long backoff_ms;               /* the last delay; 0 while healthy */
    int64_t next_try_ms;           /* no connect attempt before this (monotonic) */
    enum rconn_reason down_reason; /* what the outage started with */
    uint64_t down_failures;        /* failures during the outage */
    void (*on_connect)(struct rconn *r, void *arg); /* after every (re)connect, or NULL */
    void *on_connect_arg;
};

/* Prepares r for cfg's Redis without connecting; who names it in the log,
 * command_timeout_ms bounds each reply (a blocking command's own block must
 * fit in it). Returns 0, or -1 when cfg's address cannot be used (logged). */
int rconn_init(struct rconn *r, const struct config *cfg, const char *who, long command_timeout_ms);

/* Sets the hook run after every successful (re)connect (registering, picking
 * up what was left); it may send commands on r. */
void rconn_set_on_connect(struct rconn *r, void (*fn)(struct rconn *r, void *arg), void *arg);

/* Connects unless connected or still in backoff. Returns true when r is
 * connected. Never sleeps beyond one connect attempt. */
bool rconn_ready(struct rconn *r);

/* Connects, sleeping out the backoff between attempts, until connected (0) or
 * *stop is set (-1; signals interrupt the sleep). */
int rconn_wait(struct rconn *r, volatile sig_atomic_t *stop);

/* Whether r holds a connection now (nothing is attempted). */
bool rconn_connected(const struct rconn *r);

/* Sends one command (argv with lengths; lens NULL means strlen), connecting
 * first when allowed. Returns a reply that is not an error (the caller frees
 * it with freeReplyObject), or NULL after applying the policy above; what
 * names the command in the log. */
redisReply *rconn_command(struct rconn *r, const char *what, int argc, const char **argv,
                          const size_t *lens);

/* rconn_command with hiredis' printf-like format. */
redisReply *rconn_commandf(struct rconn *r, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Runs script s (queue_eval: EVALSHA, EVAL on NOSCRIPT) like rconn_command. */
redisReply *rconn_script(struct rconn *r, const char *what, enum queue_script s, int nkeys,
                         int nargs, const char **argv, const size_t *lens);

/* One command of a pipeline. */
struct rconn_cmd {
    int argc;
    const char **argv;
    const size_t *lens; /* NULL: strlen */
};

/* Sends n commands pipelined and reads their n replies into replies[] (the
 * caller frees each). Returns 0, or -1 after applying the policy when a reply
 * is missing or an error (then replies[] are all NULL). */
int rconn_pipeline(struct rconn *r, const char *what, int n, const struct rconn_cmd *cmds,
                   redisReply **replies);

/* Closes the connection (the backoff state stays). */
void rconn_close(struct rconn *r);

#endif
