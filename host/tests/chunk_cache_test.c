/* SPDX-License-Identifier: Apache-2.0 */
/* ctest for chunk_cache.h: the cached `load` and `require` behave as Lua's own (results, chunk
 * names in errors, _ENV, modes, error messages), a second state is served from the cache, and
 * an edited source is compiled anew. Exits non-zero on failure. */
#include "chunk_cache.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stdout, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stdout, __VA_ARGS__);                                                          \
            fputc('\n', stdout);                                                                   \
        }                                                                                          \
    } while (0)

static lua_State *new_plain_state(const char *module_dir)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/?.lua", module_dir);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
    return L;
}

static lua_State *new_state(const char *module_dir)
{
    lua_State *L = new_plain_state(module_dir);
    chunk_cache_install(L);
    return L;
}

/* Runs Lua code that returns one string; returns a copy (or the error text). */
static char *eval(lua_State *L, const char *code)
{
    const char *out;
    if (luaL_loadstring(L, code) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK)
        out = lua_tostring(L, -1);
    else
        out = lua_isstring(L, -1) ? lua_tostring(L, -1) : "(not a string)";
    char *copy = strdup(out != NULL ? out : "(nil)");
    lua_settop(L, 0);
    return copy;
}

static void expect(lua_State *L, const char *code, const char *want)
{
    char *got = eval(L, code);
    CHECK(strcmp(got, want) == 0, "%s\n  want: %s\n  got:  %s", code, want, got);
    free(got);
}

/* The cached state answers exactly as a state with Lua's own load and searcher. */
static void expect_as_lua(lua_State *L, const char *code)
{
    lua_State *plain = new_plain_state(".");
    char *want = eval(plain, code);
    lua_close(plain);
    expect(L, code, want);
    free(want);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
}

static void test_load(void)
{
    chunk_cache_clear();
    lua_State *L = new_state(".");
    expect(L, "return load('return 1 + 2')()", "3");
    size_t after_first = chunk_cache_bytes();
    CHECK(after_first > 0, "a loaded chunk is cached");
    expect(L, "return load('return 1 + 2')()", "3");
    CHECK(chunk_cache_bytes() == after_first, "the same text is a hit, not a second entry");
    /* _ENV, chunk names and line numbers survive the round trip through bytecode. */
    expect(L, "return load('return x', 'c', 't', {x = 'from env'})()", "from env");
    expect(L, "local f = load('\\n\\nerror(\"boom\")', '@file.lua'); return select(2, pcall(f))",
           "file.lua:3: boom");
    expect(L, "local f = load('\\n\\nerror(\"boom\")', '@file.lua'); return select(2, pcall(f))",
           "file.lua:3: boom"); /* again, from the cache */
    /* Failures and modes exactly as Lua's own load. */
    expect_as_lua(L, "return select(2, load('return +', '=bad'))");
    expect_as_lua(L, "return select(2, load('return +'))");
    expect_as_lua(L, "return select(2, load('return 1', 'm', 'b'))");
    expect_as_lua(L, "return select(2, load(string.dump(function() end), 'bin', 't'))");
    expect_as_lua(L, "return select(2, pcall(load, 'return 1', 'm', 'x'))");
    expect_as_lua(L, "return select(2, pcall(load, {}))");
    expect(L, "return tostring(load(string.dump(function() return 7 end), 'bin', 'b')())", "7");
    expect(L,
           "local parts = {'return ', '42'}; local i = 0; "
           "return tostring(load(function() i = i + 1; return parts[i] end)())",
           "42");
    /* Another state gets the bytecode, not a parse, and the same answers. */
    size_t before_other = chunk_cache_bytes();
    lua_State *other = new_state(".");
    expect(other, "return load('return 1 + 2')()", "3");
    CHECK(chunk_cache_bytes() == before_other, "another state is served from the cache");
    lua_close(other);
    lua_close(L);
}

/* Recording off (a server with one state): loads work as ever and nothing is kept. */
static void test_recording_off(void)
{
    chunk_cache_clear();
    chunk_cache_record(false);
    lua_State *L = new_state(".");
    expect(L, "return load('return 40 + 2')()", "42");
    expect_as_lua(L, "return select(2, load('return +', '=bad'))");
    CHECK(chunk_cache_bytes() == 0, "nothing is stored while recording is off");
    lua_close(L);
}

static void test_require(const char *dir)
{
    chunk_cache_clear();
    char path[512];
    snprintf(path, sizeof path, "%s/cached_mod.lua", dir);
    write_file(path, "#!/usr/bin/env lua\nlocal m = {}\nfunction m.where() error('here') end\n"
                     "m.value = 'one'\nreturn m\n");
    lua_State *L = new_state(dir);
    expect(L, "return require('cached_mod').value", "one");
    size_t cached = chunk_cache_bytes();
    CHECK(cached > 0, "the module is cached");
    /* The "#" line is skipped but counted, as luaL_loadfilex does. */
    expect(L,
           "local ok, e = pcall(require('cached_mod').where); return e:match('cached_mod.lua:%d+')",
           "cached_mod.lua:3");
    lua_State *again = new_state(dir);
    expect(again, "return tostring(select(2, require('cached_mod')))", path);
    expect(again, "return require('cached_mod').value", "one"); /* the loaded module */
    CHECK(chunk_cache_bytes() == cached, "a second state loads the module from the cache");
    /* An edited file is compiled anew: the cache never serves stale code. */
    write_file(path, "return {value = 'two'}\n");
    lua_State *edited = new_state(dir);
    expect(edited, "return require('cached_mod').value", "two");
    CHECK(chunk_cache_bytes() > cached, "the edited source got an entry of its own");
    /* Missing modules and syntax errors read as Lua's own messages. */
    char *missing = eval(edited, "return select(2, pcall(require, 'no_such_mod'))");
    CHECK(strstr(missing, "module 'no_such_mod' not found") != NULL &&
              strstr(missing, "no file") != NULL,
          "%s", missing);
    free(missing);
    snprintf(path, sizeof path, "%s/broken_mod.lua", dir);
    write_file(path, "return {\n");
    char *broken = eval(edited, "return select(2, pcall(require, 'broken_mod'))");
    CHECK(strstr(broken, "error loading module 'broken_mod' from file") != NULL &&
              strstr(broken, "broken_mod.lua:2:") != NULL,
          "%s", broken);
    free(broken);
    lua_close(edited);
    lua_close(again);
    lua_close(L);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : ".";
    test_recording_off();
    chunk_cache_record(true);
    test_load();
    test_require(dir);
    chunk_cache_clear();
    if (failures > 0) {
        printf("%d failure(s)\n", failures);
        return 1;
    }
    printf("chunk_cache_test: ok\n");
    return 0;
}
