/* SPDX-License-Identifier: Apache-2.0 */
/* host.fs: read the small files the server needs (token files, kubeconfigs, provider
 * scripts), stat a path, list a directory. Misuse raises; a missing, unreadable,
 * oversized or non-regular file returns nil, message, code. Messages never quote contents. */
#include "bindings/bindings.h"

#include <lauxlib.h>
#include <lua.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FS_READ_DEFAULT (1024 * 1024)
#define FS_READ_MAX (64 * 1024 * 1024)
#define FS_READ_CHUNK 65536
#define FS_LIST_MAX 10000
#define FS_GUARD_METATABLE "host.fs.guard"

/* Owns the descriptors and memory of one call, so that a Lua error (out of memory
 * while building the result) lets the garbage collector release them. */
struct fs_guard {
    int fd;
    DIR *dir;
    char **names;
    size_t count;
};

/* An expected failure being built: code NULL means out of memory (raised). */
struct fs_fail {
    const char *code;
    const char *problem;
    char buf[160];
};

static void guard_release(struct fs_guard *guard)
{
    if (guard->fd >= 0) {
        close(guard->fd);
        guard->fd = -1;
    }
    if (guard->dir != NULL) {
        closedir(guard->dir);
        guard->dir = NULL;
    }
    for (size_t i = 0; i < guard->count; i++)
        free(guard->names[i]);
    free(guard->names);
    guard->names = NULL;
    guard->count = 0;
}

static int guard_gc(lua_State *L)
{
    guard_release(luaL_checkudata(L, 1, FS_GUARD_METATABLE));
    return 0;
}

static struct fs_guard *push_guard(lua_State *L)
{
    struct fs_guard *guard = lua_newuserdatauv(L, sizeof *guard, 0);
    memset(guard, 0, sizeof *guard);
    guard->fd = -1;
    if (luaL_newmetatable(L, FS_GUARD_METATABLE)) {
        lua_pushcfunction(L, guard_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return guard;
}

static bool fail(struct fs_fail *f, const char *problem, const char *code)
{
    f->problem = problem;
    f->code = code;
    return false;
}

static bool fail_errno(struct fs_fail *f, int err)
{
    if (strerror_r(err, f->buf, sizeof f->buf) != 0)
        snprintf(f->buf, sizeof f->buf, "error %d", err);
    switch (err) {
    case ENOENT:
    case ENOTDIR:
        return fail(f, f->buf, "not_found");
    case EACCES:
    case EPERM:
        return fail(f, f->buf, "permission");
    default:
        return fail(f, f->buf, "io");
    }
}

/* nil, "host.fs.<fname>: <path>: <problem>", code; raises for out of memory. */
static int push_failure(lua_State *L, const char *fname, const char *path, const struct fs_fail *f)
{
    if (f->code == NULL)
        return luaL_error(L, "host.fs.%s: out of memory", fname);
    lua_pushnil(L);
    lua_pushfstring(L, "host.fs.%s: %s: %s", fname, path, f->problem);
    lua_pushstring(L, f->code);
    return 3;
}

/* Argument 1: a string without NUL bytes (the kernel would silently cut it there). */
static const char *check_path(lua_State *L, const char *fname)
{
    size_t len;
    if (lua_type(L, 1) != LUA_TSTRING)
        luaL_error(L, "host.fs.%s: path must be a string (got %s)", fname, luaL_typename(L, 1));
    const char *path = lua_tolstring(L, 1, &len);
    if (strlen(path) != len)
        luaL_error(L, "host.fs.%s: path contains a NUL byte", fname);
    return path;
}

/* Opens path for reading if it is a regular file of at most max bytes; *size is its size. */
static bool open_regular(const char *path, size_t max, int *fd, size_t *size, struct fs_fail *f)
{
    struct stat st;
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer. */
    *fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (*fd < 0 || fstat(*fd, &st) != 0)
        return fail_errno(f, errno);
    if (S_ISDIR(st.st_mode))
        return fail(f, "is a directory", "io");
    if (!S_ISREG(st.st_mode))
        return fail(f, "not a regular file", "io");
    if ((uintmax_t)st.st_size > max) {
        snprintf(f->buf, sizeof f->buf, "%jd bytes, more than max_bytes (%zu)",
                 (intmax_t)st.st_size, max);
        return fail(f, f->buf, "too_large");
    }
    int flags = fcntl(*fd, F_GETFL);
    if (flags < 0 || fcntl(*fd, F_SETFL, flags & ~O_NONBLOCK) != 0)
        return fail_errno(f, errno);
    *size = (size_t)st.st_size;
    return true;
}

/* Reads fd to its end and pushes the bytes. The file may have changed size since
 * fstat: read until EOF, and fail once more than max bytes came. Files whose size
 * the kernel does not know (procfs: 0) are read in chunks. */
static bool read_all(lua_State *L, int fd, size_t max, size_t size, struct fs_fail *f)
{
    luaL_Buffer b;
    size_t total = 0;

    luaL_buffinit(L, &b);
    for (;;) {
        /* Up to the expected end plus one byte (which shows EOF without growing
         * the buffer), then chunks if the file grew. */
        size_t want = total <= size ? size - total + 1 : FS_READ_CHUNK;
        if (want > max + 1 - total)
            want = max + 1 - total;
        ssize_t n = read(fd, luaL_prepbuffsize(&b, want), want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fail_errno(f, errno);
        if (n == 0)
            break;
        luaL_addsize(&b, (size_t)n);
        total += (size_t)n;
        if (total > max) {
            snprintf(f->buf, sizeof f->buf, "more than max_bytes (%zu)", max);
            return fail(f, f->buf, "too_large");
        }
    }
    luaL_pushresult(&b);
    return true;
}

static int fs_read_file(lua_State *L)
{
    const char *path = check_path(L, "read_file");
    lua_Integer max = luaL_optinteger(L, 2, FS_READ_DEFAULT);
    struct fs_fail f;
    size_t size = 0;

    if (max < 1 || max > FS_READ_MAX)
        return luaL_error(L, "host.fs.read_file: max_bytes must be between 1 and %d", FS_READ_MAX);
    struct fs_guard *guard = push_guard(L);
    bool ok = open_regular(path, (size_t)max, &guard->fd, &size, &f) &&
              read_all(L, guard->fd, (size_t)max, size, &f);
    guard_release(guard);
    if (!ok)
        return push_failure(L, "read_file", path, &f);
    return 1; /* the string read_all pushed */
}

static const char *type_name(mode_t mode)
{
    if (S_ISREG(mode))
        return "file";
    if (S_ISDIR(mode))
        return "directory";
    if (S_ISLNK(mode))
        return "link"; /* only if the kernel reports one: stat() follows links */
    return "other";
}

static int fs_stat(lua_State *L)
{
    const char *path = check_path(L, "stat");
    struct stat st;
    struct fs_fail f;

    /* stat, not lstat: a Secret volume's files are links through ..data, which
     * kubelet swaps atomically; callers want the target's identity. */
    if (stat(path, &st) != 0) {
        fail_errno(&f, errno);
        return push_failure(L, "stat", path, &f);
    }
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, (lua_Integer)st.st_size);
    lua_setfield(L, -2, "size");
    lua_pushnumber(L, (lua_Number)st.st_mtim.tv_sec + (lua_Number)st.st_mtim.tv_nsec / 1e9);
    lua_setfield(L, -2, "mtime");
    lua_pushinteger(L, (lua_Integer)st.st_ino);
    lua_setfield(L, -2, "inode");
    lua_pushinteger(L, (lua_Integer)st.st_dev);
    lua_setfield(L, -2, "dev");
    lua_pushstring(L, type_name(st.st_mode));
    lua_setfield(L, -2, "type");
    return 1;
}

static bool open_dir(const char *path, struct fs_guard *guard, struct fs_fail *f)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECTORY | O_NOCTTY);
    if (fd < 0) {
        int err = errno;
        /* ENOTDIR on an existing path: a file, not a missing directory (like
         * read_file of a directory, that is io). */
        if (err == ENOTDIR && stat(path, &st) == 0)
            return fail(f, "not a directory", "io");
        return fail_errno(f, err);
    }
    guard->dir = fdopendir(fd);
    if (guard->dir == NULL) {
        int err = errno;
        close(fd);
        return fail_errno(f, err);
    }
    return true;
}

static bool read_names(struct fs_guard *guard, struct fs_fail *f)
{
    size_t cap = 0;
    for (;;) {
        errno = 0;
        const struct dirent *d = readdir(guard->dir);
        if (d == NULL)
            return errno == 0 ? true : fail_errno(f, errno);
        if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
            continue;
        if (guard->count == FS_LIST_MAX) {
            snprintf(f->buf, sizeof f->buf, "more than %d entries", FS_LIST_MAX);
            return fail(f, f->buf, "too_large");
        }
        if (guard->count == cap) {
            cap = cap == 0 ? 64 : cap * 2;
            char **names = realloc(guard->names, cap * sizeof *names);
            if (names == NULL)
                return fail(f, NULL, NULL);
            guard->names = names;
        }
        if ((guard->names[guard->count] = strdup(d->d_name)) == NULL)
            return fail(f, NULL, NULL);
        guard->count++;
    }
}

/* Byte order, whatever the locale (Lua's own string comparison uses strcoll). */
static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int fs_list_dir(lua_State *L)
{
    const char *path = check_path(L, "list_dir");
    struct fs_fail f;

    struct fs_guard *guard = push_guard(L);
    if (!open_dir(path, guard, &f) || !read_names(guard, &f)) {
        guard_release(guard);
        return push_failure(L, "list_dir", path, &f);
    }
    closedir(guard->dir);
    guard->dir = NULL;
    if (guard->count > 0)
        qsort(guard->names, guard->count, sizeof *guard->names, compare_names);
    lua_createtable(L, (int)guard->count, 0);
    for (size_t i = 0; i < guard->count; i++) {
        lua_pushstring(L, guard->names[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    guard_release(guard);
    return 1;
}

static const luaL_Reg fs_functions[] = {
    {"read_file", fs_read_file},
    {"stat", fs_stat},
    {"list_dir", fs_list_dir},
    {NULL, NULL},
};

int luaopen_host_fs(lua_State *L)
{
    luaL_newlib(L, fs_functions);
    return 1;
}
