/* SPDX-License-Identifier: Apache-2.0 */
/* host.process: runs a program (posix_spawnp, own process group) with a deadline and bounded
 * output. Misuse raises; a run that fails returns nil, message, code
 * (not_found|timeout|too_large|io); a non-zero exit status is a result, not a failure. */
#define _GNU_SOURCE /* pipe2, memfd_create, posix_spawn_file_actions_addchdir_np, environ */
#include "bindings/bindings.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>

#define RUN_MT "host.process.run"
#define FN_RUN "host.process.run"
#define DEFAULT_TIMEOUT_S 10.0
#define MAX_TIMEOUT_S 1e6
#define DEFAULT_MAX_OUTPUT ((lua_Integer)1 << 20)
#define MAX_MAX_OUTPUT ((lua_Integer)1 << 40)
#define KILL_GRACE_MS 1000 /* between SIGTERM and SIGKILL */
#define READ_CHUNK 16384
#define MAX_SLEEP_MS 20 /* polling for the exit of a child that closed its pipes */

enum { STREAM_OUT, STREAM_ERR, STREAMS };
enum { RUN_OK, RUN_TIMEOUT, RUN_TOO_LARGE, RUN_IO };

typedef struct {
    char *data;
    size_t len, cap;
} out_buf;

/* Everything one run holds, in a userdata so that a raise (out of memory) frees it. Between the
 * spawn and the reap no Lua function is called; __gc still kills and reaps as a last resort. */
typedef struct {
    pid_t pid;                  /* > 0 until reaped; also the process group id */
    int fds[STREAMS];           /* parent's read ends, -1 once closed */
    int child_fds[STREAMS + 1]; /* the child's stdout, stderr and stdin; closed after the spawn */
    out_buf out[STREAMS];
    int status;
    int saved_errno;    /* for RUN_IO */
    const char *failed; /* for RUN_IO: the step that failed */
} run_state;

typedef struct {
    char **argv, **envp;
    const char *cwd, *input;
    size_t input_len;
    int has_input;
    double timeout;
    size_t max_output;
} run_options;

/* Stack slots of process_run: the options and what is built from them stay anchored there. */
enum {
    SLOT_OPTS = 1,
    SLOT_ARGV,
    SLOT_ENV,
    SLOT_INHERIT,
    SLOT_STDIN,
    SLOT_TIMEOUT,
    SLOT_MAX,
    SLOT_CWD,
    SLOT_ARGV_ARRAY,
    SLOT_ENV_STRINGS,
    SLOT_ENV_ARRAY,
    SLOT_STATE
};

static const char *const option_names[] = {"argv",    "env",        "inherit_env", "stdin",
                                           "timeout", "max_output", "cwd",         NULL};

/* ---- run state lifetime ---- */

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void reap(run_state *r)
{
    while (r->pid > 0 && waitpid(r->pid, &r->status, 0) < 0 && errno == EINTR)
        ;
    r->pid = 0;
}

static void run_release(run_state *r)
{
    for (int i = 0; i < STREAMS; i++)
        close_fd(&r->fds[i]);
    for (int i = 0; i < STREAMS + 1; i++)
        close_fd(&r->child_fds[i]);
    if (r->pid > 0) {
        kill(-r->pid, SIGKILL);
        kill(r->pid, SIGKILL);
        reap(r);
    }
    for (int i = 0; i < STREAMS; i++) {
        free(r->out[i].data);
        r->out[i] = (out_buf){NULL, 0, 0};
    }
}

static int run_gc(lua_State *L)
{
    run_release(luaL_checkudata(L, 1, RUN_MT));
    return 0;
}

static run_state *push_run_state(lua_State *L)
{
    run_state *r = lua_newuserdatauv(L, sizeof *r, 0);
    memset(r, 0, sizeof *r);
    for (int i = 0; i < STREAMS; i++)
        r->fds[i] = -1;
    for (int i = 0; i < STREAMS + 1; i++)
        r->child_fds[i] = -1;
    if (luaL_newmetatable(L, RUN_MT)) {
        lua_pushcfunction(L, run_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return r;
}

/* ---- options (every check raises: they are the caller's mistakes) ---- */

static void check_keys(lua_State *L)
{
    lua_pushnil(L);
    while (lua_next(L, SLOT_OPTS) != 0) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "%s: option names must be strings", FN_RUN);
        const char *key = lua_tostring(L, -1);
        const char *const *k = option_names;
        while (*k != NULL && strcmp(*k, key) != 0)
            k++;
        if (*k == NULL)
            luaL_error(L, "%s: unknown option '%s'", FN_RUN, key);
    }
}

/* A string handed to the kernel as a C string: an embedded NUL would cut it. */
static const char *check_cstring(lua_State *L, int idx, const char *what)
{
    size_t len;
    if (lua_type(L, idx) != LUA_TSTRING)
        luaL_error(L, "%s: %s must be a string", FN_RUN, what);
    const char *s = lua_tolstring(L, idx, &len);
    if (strlen(s) != len)
        luaL_error(L, "%s: %s must not contain NUL", FN_RUN, what);
    return s;
}

static void build_argv(lua_State *L, run_options *o)
{
    if (!lua_istable(L, SLOT_ARGV))
        luaL_error(L, "%s: 'argv' must be a non-empty list of strings", FN_RUN);
    lua_Unsigned n = lua_rawlen(L, SLOT_ARGV);
    if (n == 0 || n > INT_MAX / 2)
        luaL_error(L, "%s: 'argv' must be a non-empty list of strings", FN_RUN);
    o->argv = lua_newuserdatauv(L, (n + 1) * sizeof *o->argv, 0); /* SLOT_ARGV_ARRAY */
    for (lua_Unsigned i = 1; i <= n; i++) {
        lua_rawgeti(L, SLOT_ARGV, (lua_Integer)i);
        /* The string stays anchored by the argv table, which no Lua code runs to change. */
        o->argv[i - 1] = (char *)check_cstring(L, -1, "every 'argv' element");
        lua_pop(L, 1);
    }
    o->argv[n] = NULL;
    if (o->argv[0][0] == '\0')
        luaL_error(L, "%s: 'argv[1]' must not be empty", FN_RUN);
}

/* Adds "NAME=value" for every entry of the env option to the table on top. */
static void add_env_overrides(lua_State *L)
{
    if (lua_isnil(L, SLOT_ENV))
        return;
    if (!lua_istable(L, SLOT_ENV))
        luaL_error(L, "%s: 'env' must be a table of name = value strings", FN_RUN);
    lua_pushnil(L);
    while (lua_next(L, SLOT_ENV) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "%s: 'env' names must be strings", FN_RUN);
        const char *name = check_cstring(L, -2, "every 'env' name");
        if (name[0] == '\0' || strchr(name, '=') != NULL)
            luaL_error(L, "%s: 'env' name '%s' is empty or contains '='", FN_RUN, name);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "%s: 'env' value of '%s' must be a string", FN_RUN, name);
        size_t len;
        const char *value = lua_tolstring(L, -1, &len);
        if (strlen(value) != len)
            luaL_error(L, "%s: 'env' value of '%s' must not contain NUL", FN_RUN, name);
        lua_pushfstring(L, "%s=%s", name, value);
        lua_rawseti(L, -4, (lua_Integer)lua_rawlen(L, -4) + 1);
        lua_pop(L, 1);
    }
}

/* Copies the host's environment, minus the names the env option sets, to the table on top. */
static void add_inherited_env(lua_State *L)
{
    for (char **e = environ; e != NULL && *e != NULL; e++) {
        const char *eq = strchr(*e, '=');
        if (eq == NULL)
            continue;
        if (lua_istable(L, SLOT_ENV)) {
            lua_pushlstring(L, *e, (size_t)(eq - *e));
            int overridden = lua_rawget(L, SLOT_ENV) != LUA_TNIL;
            lua_pop(L, 1);
            if (overridden)
                continue;
        }
        lua_pushstring(L, *e);
        lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    }
}

static void build_envp(lua_State *L, run_options *o)
{
    if (!lua_isnil(L, SLOT_INHERIT) && !lua_isboolean(L, SLOT_INHERIT))
        luaL_error(L, "%s: 'inherit_env' must be a boolean", FN_RUN);
    int inherit = lua_isnil(L, SLOT_INHERIT) || lua_toboolean(L, SLOT_INHERIT);
    lua_newtable(L); /* SLOT_ENV_STRINGS */
    if (inherit)
        add_inherited_env(L);
    add_env_overrides(L);
    lua_Unsigned n = lua_rawlen(L, SLOT_ENV_STRINGS);
    o->envp = lua_newuserdatauv(L, (n + 1) * sizeof *o->envp, 0); /* SLOT_ENV_ARRAY */
    for (lua_Unsigned i = 1; i <= n; i++) {
        lua_rawgeti(L, SLOT_ENV_STRINGS, (lua_Integer)i);
        o->envp[i - 1] = (char *)lua_tostring(L, -1); /* anchored by SLOT_ENV_STRINGS */
        lua_pop(L, 1);
    }
    o->envp[n] = NULL;
}

static void read_limits(lua_State *L, run_options *o)
{
    o->timeout = DEFAULT_TIMEOUT_S;
    if (!lua_isnil(L, SLOT_TIMEOUT)) {
        if (lua_type(L, SLOT_TIMEOUT) != LUA_TNUMBER)
            luaL_error(L, "%s: 'timeout' must be a number of seconds", FN_RUN);
        o->timeout = lua_tonumber(L, SLOT_TIMEOUT);
        if (!(o->timeout > 0 && o->timeout <= MAX_TIMEOUT_S))
            luaL_error(L, "%s: 'timeout' must be > 0 and <= %f seconds", FN_RUN, MAX_TIMEOUT_S);
    }
    lua_Integer max = DEFAULT_MAX_OUTPUT;
    if (!lua_isnil(L, SLOT_MAX)) {
        if (!lua_isinteger(L, SLOT_MAX))
            luaL_error(L, "%s: 'max_output' must be an integer", FN_RUN);
        max = lua_tointeger(L, SLOT_MAX);
        if (max < 1 || max > MAX_MAX_OUTPUT)
            luaL_error(L, "%s: 'max_output' must be between 1 and %I", FN_RUN, MAX_MAX_OUTPUT);
    }
    o->max_output = (size_t)max;
}

/* Reads the options table at 1 into o; leaves SLOT_ARGV .. SLOT_ENV_ARRAY on the stack. */
static void read_options(lua_State *L, run_options *o)
{
    if (!lua_istable(L, SLOT_OPTS))
        luaL_error(L, "%s: argument must be a table of options", FN_RUN);
    lua_settop(L, SLOT_OPTS);
    check_keys(L);
    for (int i = 0; option_names[i] != NULL; i++)
        lua_getfield(L, SLOT_OPTS, option_names[i]); /* SLOT_ARGV .. SLOT_CWD */
    memset(o, 0, sizeof *o);
    build_argv(L, o);
    build_envp(L, o);
    read_limits(L, o);
    if (!lua_isnil(L, SLOT_STDIN)) {
        if (lua_type(L, SLOT_STDIN) != LUA_TSTRING)
            luaL_error(L, "%s: 'stdin' must be a string", FN_RUN);
        o->input = lua_tolstring(L, SLOT_STDIN, &o->input_len);
        o->has_input = 1;
    }
    if (!lua_isnil(L, SLOT_CWD))
        o->cwd = check_cstring(L, SLOT_CWD, "'cwd'");
}

/* ---- spawning ---- */

/* Keeps fds 0-2 free: a dup2 onto the same number would keep close-on-exec set. */
static int fd_above_stdio(int fd)
{
    if (fd < 0 || fd > 2)
        return fd;
    int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    int saved = errno;
    close(fd);
    errno = saved;
    return moved;
}

/* The child's stdin: a memfd holding the text (no writes to a pipe, so no SIGPIPE and no
 * deadlock against a child that does not read), or /dev/null. */
static int open_input(const run_options *o)
{
    if (!o->has_input)
        return fd_above_stdio(open("/dev/null", O_RDONLY | O_CLOEXEC));
    int fd = fd_above_stdio(memfd_create("host.process.stdin", MFD_CLOEXEC));
    for (size_t off = 0; fd >= 0 && off < o->input_len;) {
        ssize_t n = write(fd, o->input + off, o->input_len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int saved = errno;
            close(fd);
            errno = saved;
            return -1;
        }
        off += (size_t)n;
    }
    if (fd >= 0 && lseek(fd, 0, SEEK_SET) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* Pipes with close-on-exec, so that spawns in other threads never inherit them. */
static int open_pipes(run_state *r)
{
    for (int i = 0; i < STREAMS; i++) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
            return -1;
        r->fds[i] = fd_above_stdio(p[0]);
        r->child_fds[i] = fd_above_stdio(p[1]);
        if (r->fds[i] < 0 || r->child_fds[i] < 0)
            return -1;
        if (fcntl(r->fds[i], F_SETFL, O_NONBLOCK) < 0)
            return -1;
    }
    return 0;
}

/* The plugin gets a normal signal state: empty mask (the host blocks SIGTERM/SIGINT in every
 * thread) and default dispositions (the host ignores SIGPIPE), in its own process group. */
static int spawn_child(run_state *r, const run_options *o)
{
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    sigset_t none, all;
    int rc;

    sigemptyset(&none);
    sigfillset(&all);
    if ((rc = posix_spawn_file_actions_init(&actions)) != 0)
        return rc;
    if ((rc = posix_spawnattr_init(&attr)) != 0) {
        posix_spawn_file_actions_destroy(&actions);
        return rc;
    }
    rc = posix_spawn_file_actions_adddup2(&actions, r->child_fds[STREAMS], 0);
    for (int i = 0; rc == 0 && i < STREAMS; i++)
        rc = posix_spawn_file_actions_adddup2(&actions, r->child_fds[i], i + 1);
    if (rc == 0 && o->cwd != NULL)
        rc = posix_spawn_file_actions_addchdir_np(&actions, o->cwd);
    if (rc == 0)
        rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                                 POSIX_SPAWN_SETSIGDEF);
    if (rc == 0)
        rc = posix_spawnattr_setpgroup(&attr, 0);
    if (rc == 0)
        rc = posix_spawnattr_setsigmask(&attr, &none);
    if (rc == 0)
        rc = posix_spawnattr_setsigdefault(&attr, &all);
    if (rc == 0)
        rc = posix_spawnp(&r->pid, o->argv[0], &actions, &attr, o->argv, o->envp);
    if (rc != 0)
        r->pid = 0;
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    for (int i = 0; i < STREAMS + 1; i++)
        close_fd(&r->child_fds[i]);
    return rc;
}

/* ---- waiting ---- */

static struct timespec deadline_after(double seconds)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    double whole = (double)(long long)seconds;
    t.tv_sec += (time_t)whole;
    t.tv_nsec += (long)((seconds - whole) * 1e9);
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

/* Milliseconds left until the deadline, rounded up; 0 once it has passed. */
static int ms_until(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double ms = (double)(deadline->tv_sec - now.tv_sec) * 1e3 +
                (double)(deadline->tv_nsec - now.tv_nsec) / 1e6;
    if (ms <= 0)
        return 0;
    return ms >= INT_MAX ? INT_MAX : (int)ms + 1;
}

static int io_failure(run_state *r, const char *step)
{
    r->saved_errno = errno;
    r->failed = step;
    return RUN_IO;
}

static int append(out_buf *b, const char *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        char *data = realloc(b->data, cap);
        if (data == NULL)
            return 0;
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 1;
}

static int read_stream(run_state *r, int i, size_t max_output)
{
    char chunk[READ_CHUNK];
    ssize_t n = read(r->fds[i], chunk, sizeof chunk);

    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? RUN_OK : io_failure(r, "read");
    if (n == 0) {
        close_fd(&r->fds[i]);
        return RUN_OK;
    }
    if ((size_t)n > max_output - r->out[i].len)
        return RUN_TOO_LARGE;
    if (!append(&r->out[i], chunk, (size_t)n)) {
        errno = ENOMEM;
        return io_failure(r, "read");
    }
    return RUN_OK;
}

/* Reads stdout and stderr until both are closed (by every process holding them). */
static int collect_output(run_state *r, size_t max_output, const struct timespec *deadline)
{
    while (r->fds[STREAM_OUT] >= 0 || r->fds[STREAM_ERR] >= 0) {
        struct pollfd p[STREAMS];
        int ms = ms_until(deadline);
        if (ms == 0)
            return RUN_TIMEOUT;
        for (int i = 0; i < STREAMS; i++)
            p[i] = (struct pollfd){.fd = r->fds[i], .events = POLLIN};
        if (poll(p, STREAMS, ms) < 0) {
            if (errno == EINTR)
                continue;
            return io_failure(r, "poll");
        }
        for (int i = 0; i < STREAMS; i++) {
            if (p[i].fd < 0 || p[i].revents == 0)
                continue;
            int rc = read_stream(r, i, max_output);
            if (rc != RUN_OK)
                return rc;
        }
    }
    return RUN_OK;
}

static void sleep_ms(int ms)
{
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* Waits (polling, no SIGCHLD) for the child to exit, then reaps it; with peek it stays a zombie
 * and keeps its pid, so the process group id cannot be reused yet. */
static int wait_child(run_state *r, const struct timespec *deadline, int peek)
{
    for (int delay = 1;; delay = delay * 2 > MAX_SLEEP_MS ? MAX_SLEEP_MS : delay * 2) {
        siginfo_t info;
        memset(&info, 0, sizeof info);
        if (waitid(P_PID, (id_t)r->pid, &info, WEXITED | WNOHANG | WNOWAIT) < 0) {
            if (errno == EINTR)
                continue;
            r->pid = 0; /* ECHILD: nothing left to reap */
            return io_failure(r, "waitid");
        }
        if (info.si_pid == r->pid) {
            if (!peek)
                reap(r); /* collects the status; does not block, the child has exited */
            return RUN_OK;
        }
        int ms = ms_until(deadline);
        if (ms == 0)
            return RUN_TIMEOUT;
        sleep_ms(ms < delay ? ms : delay);
    }
}

/* SIGTERM to the process group, SIGKILL after the grace period, then reaps the child. */
static void terminate(run_state *r)
{
    for (int i = 0; i < STREAMS; i++)
        close_fd(&r->fds[i]);
    if (r->pid <= 0)
        return;
    kill(-r->pid, SIGTERM);
    struct timespec grace = deadline_after(KILL_GRACE_MS / 1000.0);
    wait_child(r, &grace, 1);
    if (r->pid <= 0)
        return;
    /* The unreaped leader reserves the group id: this cannot hit an unrelated group. */
    kill(-r->pid, SIGKILL);
    kill(r->pid, SIGKILL); /* in case it left its group */
    reap(r);
}

/* ---- results ---- */

static int push_failure(lua_State *L, const char *code, const char *fmt, ...)
{
    char message[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", FN_RUN, message);
    lua_pushstring(L, code);
    return 3;
}

static int spawn_failure(lua_State *L, const run_options *o, int err)
{
    /* posix_spawnp reports the exec's errno: lookup and permission failures are not_found. */
    if (err == ENOENT || err == EACCES || err == ENOTDIR || err == ENOEXEC || err == ELOOP ||
        err == ENAMETOOLONG || err == EISDIR)
        return push_failure(L, "not_found", "cannot run '%.100s': %s", o->argv[0], strerror(err));
    return push_failure(L, "io", "cannot start '%.100s': %s", o->argv[0], strerror(err));
}

static int run_failure(lua_State *L, const run_state *r, const run_options *o, int rc)
{
    if (rc == RUN_TIMEOUT)
        return push_failure(L, "timeout", "'%.100s' did not finish within %g s; killed", o->argv[0],
                            o->timeout);
    if (rc == RUN_TOO_LARGE)
        return push_failure(L, "too_large",
                            "'%.100s' wrote more than %zu bytes to one stream; "
                            "killed",
                            o->argv[0], o->max_output);
    return push_failure(L, "io", "running '%.100s': %s: %s", o->argv[0], r->failed,
                        strerror(r->saved_errno));
}

static int push_result(lua_State *L, run_state *r)
{
    lua_createtable(L, 0, 4);
    if (WIFEXITED(r->status)) {
        lua_pushinteger(L, WEXITSTATUS(r->status));
        lua_setfield(L, -2, "exit_code");
    } else if (WIFSIGNALED(r->status)) {
        lua_pushinteger(L, WTERMSIG(r->status));
        lua_setfield(L, -2, "signal");
    }
    lua_pushlstring(L, r->out[STREAM_OUT].data ? r->out[STREAM_OUT].data : "",
                    r->out[STREAM_OUT].len);
    lua_setfield(L, -2, "stdout");
    lua_pushlstring(L, r->out[STREAM_ERR].data ? r->out[STREAM_ERR].data : "",
                    r->out[STREAM_ERR].len);
    lua_setfield(L, -2, "stderr");
    run_release(r);
    return 1;
}

/* Prepares the pipes and stdin, checks cwd; returns RUN_OK or RUN_IO. */
static int prepare(run_state *r, const run_options *o)
{
    struct stat st;

    /* Checked here because a failed chdir in the child would look like a missing program. */
    if (o->cwd != NULL && stat(o->cwd, &st) < 0)
        return io_failure(r, "cwd");
    if (o->cwd != NULL && !S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return io_failure(r, "cwd");
    }
    if (open_pipes(r) < 0)
        return io_failure(r, "pipe");
    r->child_fds[STREAMS] = open_input(o);
    if (r->child_fds[STREAMS] < 0)
        return io_failure(r, "stdin");
    return RUN_OK;
}

static int process_run(lua_State *L)
{
    run_options o;

    read_options(L, &o);
    run_state *r = push_run_state(L); /* SLOT_STATE */
    if (prepare(r, &o) != RUN_OK) {
        run_release(r);
        return run_failure(L, r, &o, RUN_IO);
    }
    int err = spawn_child(r, &o);
    if (err != 0) {
        run_release(r);
        return spawn_failure(L, &o, err);
    }
    struct timespec deadline = deadline_after(o.timeout);
    int rc = collect_output(r, o.max_output, &deadline);
    if (rc == RUN_OK)
        rc = wait_child(r, &deadline, 0);
    if (rc != RUN_OK) {
        terminate(r);
        run_release(r);
        return run_failure(L, r, &o, rc);
    }
    return push_result(L, r);
}

static const luaL_Reg process_functions[] = {
    {"run", process_run},
    {NULL, NULL},
};

int luaopen_host_process(lua_State *L)
{
    luaL_newlib(L, process_functions);
    return 1;
}
