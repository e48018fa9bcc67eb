/* SPDX-License-Identifier: Apache-2.0 */
/* myapiserver: flags -> TLS material -> Lua states -> HTTPS server, then wait
 * for SIGTERM/SIGINT and shut down gracefully. No request logic lives here. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <gnutls/gnutls.h>

#include "bindings/log.h"
#include "config.h"
#include "http_server.h"
#include "state_pool.h"
#include "tls_store.h"

/* Idle Lua states kept for reuse; busier moments create more, then close them. */
enum { MAX_IDLE_LUA_STATES = 16 };

struct reloader {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;
    struct tls_store *tls;
    double interval;
};

static void *reload_loop(void *arg)
{
    struct reloader *r = arg;
    pthread_mutex_lock(&r->lock);
    while (!r->stop) {
        struct timespec at;
        clock_gettime(CLOCK_REALTIME, &at);
        long long ns = (long long)at.tv_nsec + (long long)(r->interval * 1e9);
        at.tv_sec += (time_t)(ns / 1000000000LL);
        at.tv_nsec = (long)(ns % 1000000000LL);
        pthread_cond_timedwait(&r->wake, &r->lock, &at);
        if (r->stop)
            break;
        pthread_mutex_unlock(&r->lock);
        tls_store_reload_if_changed(r->tls);
        pthread_mutex_lock(&r->lock);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

static void reloader_stop(struct reloader *r)
{
    pthread_mutex_lock(&r->lock);
    r->stop = true;
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->lock);
    pthread_join(r->thread, NULL);
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
    struct reloader reloader = {.tls = tls, .interval = cfg->tls_reload_interval};
    pthread_mutex_init(&reloader.lock, NULL);
    pthread_cond_init(&reloader.wake, NULL);
    pthread_create(&reloader.thread, NULL, reload_loop, &reloader);
    log_started(http_server_port(server), cfg);
    int signal_number = 0;
    sigwait(signals, &signal_number);
    shut_down(server, cfg->shutdown_timeout, signal_number);
    reloader_stop(&reloader);
    pthread_mutex_destroy(&reloader.lock);
    pthread_cond_destroy(&reloader.wake);
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
    struct runtime_options options = {cfg.lua_dir, cfg.providers_dir};
    struct state_pool *pool = state_pool_new(&options, MAX_IDLE_LUA_STATES, err, sizeof err);
    if (pool == NULL) {
        tls_store_close(tls);
        return fail(1, err);
    }
    int rc = serve(&cfg, tls, pool, &signals);
    state_pool_free(pool);
    tls_store_close(tls);
    return rc;
}
