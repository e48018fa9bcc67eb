/* SPDX-License-Identifier: Apache-2.0 */
/* myapiserver: flags -> TLS material -> Lua states -> HTTPS server, then wait
 * for SIGTERM/SIGINT and shut down gracefully. No request logic lives here. */
#include <malloc.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "bindings/log.h"
#include "config.h"
#include "http_server.h"
#include "periodic.h"
#include "script_runtime.h"
#include "state_pool.h"
#include "tls_store.h"

/* Idle Lua states kept for reuse: as many as 64 concurrent requests need, so steady load does
 * not create states (a few ms of CPU each); a burst beyond that closes its extras on return.
 * Idle states unused for --lua-state-idle-timeout are closed, so memory follows the load down. */
enum { MAX_IDLE_LUA_STATES = 64 };

/* States alive before a request waits briefly for one instead of making another: enough for
 * every core to run Lua, several times over, when threads are preempted holding one. */
static size_t lua_states_soft_limit(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return (size_t)(cores > 0 ? cores : 1) * 4;
}

/* The Lua periodic task is called this often; it decides itself what is due. */
#define LUA_TICK_INTERVAL 1.0

/* The Lua app's periodic task borrows a state from the pool like a request does, so an idle
 * server holds one Lua state, not two; the task keeps its schedule in host.shared. */
static bool lua_tick(struct state_pool *pool, bool first, char *err, size_t errlen)
{
    lua_State *L = state_pool_acquire(pool, err, errlen);
    if (L == NULL)
        return false;
    bool ok = script_runtime_tick(L, first, err, errlen);
    state_pool_release(pool, L);
    return ok;
}

static void run_tls_reload(void *context)
{
    tls_store_reload_if_changed(context);
}

struct trim_task {
    struct state_pool *pool;
    double idle_seconds;
};

static void run_state_trim(void *context)
{
    const struct trim_task *task = context;
    size_t closed = state_pool_trim(task->pool, task->idle_seconds);
    if (closed > 0 && log_enabled(LOG_LEVEL_DEBUG)) {
        char count[24];
        snprintf(count, sizeof count, "%zu", closed);
        const char *fields[] = {"closed", count, NULL};
        log_write(LOG_LEVEL_DEBUG, "closed idle Lua states", fields);
    }
}

static void run_lua_tick(void *context)
{
    char err[1024];
    if (!lua_tick(context, false, err, sizeof err)) {
        const char *fields[] = {"error", err, NULL};
        log_write(LOG_LEVEL_WARN, "periodic task failed", fields);
    }
}

static int fail(int code, const char *message)
{
    fprintf(stderr, "myapiserver: %s\n", message);
    return code;
}

static void log_started(int port, const struct host_config *cfg)
{
    char port_text[16];
    snprintf(port_text, sizeof port_text, "%d", port);
    const char *fields[] = {"address", cfg->bind_address, "port", port_text,
                            "lua_dir", cfg->lua_dir,      NULL};
    log_write(LOG_LEVEL_INFO, "serving HTTPS", fields);
}

/* Stop accepting, let requests in flight finish (bounded), close the rest. */
static void shut_down(struct http_server *server, double timeout, int signal_number)
{
    char sig[16];
    snprintf(sig, sizeof sig, "%d", signal_number);
    const char *fields[] = {"signal", sig, NULL};
    log_write(LOG_LEVEL_INFO, "shutting down: no new connections, finishing requests", fields);
    http_server_quiesce(server);
    if (!http_server_wait_idle(server, timeout))
        log_write(LOG_LEVEL_WARN, "shutdown timeout reached with requests still in flight", NULL);
    http_server_stop(server);
    log_write(LOG_LEVEL_INFO, "stopped", NULL);
}

static int serve(const struct host_config *cfg, struct tls_store *tls, struct state_pool *pool,
                 sigset_t *signals)
{
    char err[1024];
    struct http_server *server = http_server_start(cfg, tls, pool, err, sizeof err);
    if (server == NULL)
        return fail(1, err);
    struct trim_task trim = {pool, cfg->lua_state_idle_timeout};
    const struct periodic_task tasks[] = {
        {cfg->tls_reload_interval, run_tls_reload, tls},
        {LUA_TICK_INTERVAL, run_lua_tick, pool},
        {LUA_TICK_INTERVAL, run_state_trim, &trim},
    };
    struct periodic *periodic = periodic_start(tasks, sizeof tasks / sizeof tasks[0]);
    if (periodic == NULL) {
        http_server_stop(server);
        return fail(1, "cannot start the background thread");
    }
    log_started(http_server_port(server), cfg);
    int signal_number = 0;
    sigwait(signals, &signal_number);
    shut_down(server, cfg->shutdown_timeout, signal_number);
    periodic_stop(periodic);
    return 0;
}

int main(int argc, char **argv)
{
    struct host_config cfg;
    switch (config_parse(argc, argv, &cfg)) {
    case CONFIG_EXIT_SUCCESS:
        return 0;
    case CONFIG_EXIT_USAGE:
        return 2;
    case CONFIG_OK:
        break;
    }
    log_configure(cfg.log_level, cfg.log_json);
    /* Every thread inherits this mask; the main thread alone takes the signals. */
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[1024];
    if (!config_check_files(&cfg, err, sizeof err))
        return fail(2, err);
    struct tls_paths paths = {cfg.tls_cert_file, cfg.tls_private_key_file, cfg.client_ca_file,
                              cfg.requestheader_client_ca_file};
    struct tls_store *tls = tls_store_open(&paths, err, sizeof err);
    if (tls == NULL)
        return fail(2, err);
    struct runtime_options options = {cfg.lua_dir, cfg.providers_dir, tls};
    struct state_pool *pool =
        state_pool_new(&options, MAX_IDLE_LUA_STATES, lua_states_soft_limit(), err, sizeof err);
    if (pool == NULL) {
        tls_store_close(tls);
        return fail(1, err);
    }
    /* The first run of the periodic task happens before serving, so what it loads (the
     * authentication ConfigMap) is there for the first request. */
    bool ready = lua_tick(pool, true, err, sizeof err);
    malloc_trim(0); /* start-up's freed memory back to the system before idling */
    int rc = ready ? serve(&cfg, tls, pool, &signals) : fail(1, err);
    state_pool_free(pool);
    tls_store_close(tls);
    return rc;
}
