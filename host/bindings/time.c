/* SPDX-License-Identifier: Apache-2.0 */
/* Lua module `host.time`: wall and monotonic clocks, sleep, the UTC date formats that
 * Kubernetes, HTTP and cloud request signing use, and an RFC 3339 parser.
 * Misuse raises naming the function; an unparsable time returns nil, message, "invalid_time". */
#include "bindings/bindings.h"

#include <lauxlib.h>
#include <lua.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Kubernetes (Go's RFC 3339) only has four-digit years: 0001-01-01 .. 9999-12-31. */
#define TIME_MIN_SECONDS (-62135596800.0)
#define TIME_MAX_SECONDS 253402300799.0
/* sleep() refuses longer waits: an hour-long block is a caller bug, not a pause. */
#define SLEEP_MAX_SECONDS 3600

/* English names, so HTTP dates never depend on the process locale. */
static const char *const day_names[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const month_names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static double clock_seconds(clockid_t clock)
{
    struct timespec ts;
    if (clock_gettime(clock, &ts) != 0)
        return 0.0; /* only fails for an unknown clock id, and these two always exist */
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Argument 1 as a time: nil/absent means now; anything but a finite number in
 * the four-digit-year range is a caller bug. Strings are refused on purpose:
 * a numeric string here means a time was never converted. */
static double time_arg(lua_State *L, const char *fname)
{
    int type = lua_type(L, 1);
    if (type == LUA_TNONE || type == LUA_TNIL)
        return clock_seconds(CLOCK_REALTIME);
    if (type != LUA_TNUMBER)
        luaL_error(L, "host.time.%s: t must be a number (got %s)", fname, luaL_typename(L, 1));
    double t = (double)lua_tonumber(L, 1);
    if (t != t) /* NaN */
        luaL_error(L, "host.time.%s: t is NaN", fname);
    if (!(t >= TIME_MIN_SECONDS && t < TIME_MAX_SECONDS + 1.0))
        luaL_error(L, "host.time.%s: t out of range (years 0001..9999)", fname);
    return t;
}

/* floor() for times in range, without libm (host_bindings does not link it). */
static int64_t floor_seconds(double t)
{
    int64_t whole = (int64_t)t; /* truncates toward zero */
    return (double)whole > t ? whole - 1 : whole;
}

/* Whole seconds to UTC calendar fields. gmtime_r never looks at TZ. */
static void utc_fields(lua_State *L, const char *fname, int64_t seconds, struct tm *tm)
{
    time_t tt = (time_t)seconds;
    if (gmtime_r(&tt, tm) == NULL)
        luaL_error(L, "host.time.%s: cannot convert time", fname);
}

/* The argument's UTC fields, fraction dropped (floor, so pre-1970 times with a
 * fraction still name the second they fall in). */
static void time_arg_fields(lua_State *L, const char *fname, struct tm *tm)
{
    utc_fields(L, fname, floor_seconds(time_arg(L, fname)), tm);
}

static int time_now(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)clock_seconds(CLOCK_REALTIME));
    return 1;
}

static int time_monotonic(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)clock_seconds(CLOCK_MONOTONIC));
    return 1;
}

static int time_iso8601(lua_State *L)
{
    struct tm tm;
    char buf[64];
    time_arg_fields(L, "iso8601", &tm);
    snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    lua_pushstring(L, buf);
    return 1;
}

/* A double near 1.7e9 only holds about 0.24 us, so truncating would turn
 * .123456 into .123455; round to the nearest microsecond instead. */
static int time_iso8601_micro(lua_State *L)
{
    double t = time_arg(L, "iso8601_micro");
    int64_t seconds = floor_seconds(t);
    long micros = (long)((t - (double)seconds) * 1e6 + 0.5); /* t - seconds is exact, >= 0 */
    if (micros >= 1000000) {
        seconds++;
        micros -= 1000000;
    }
    if ((double)seconds > TIME_MAX_SECONDS)
        return luaL_error(L, "host.time.iso8601_micro: t out of range (years 0001..9999)");
    struct tm tm;
    char buf[80];
    utc_fields(L, "iso8601_micro", seconds, &tm);
    snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, micros);
    lua_pushstring(L, buf);
    return 1;
}

static int time_amz_date(lua_State *L)
{
    struct tm tm;
    char buf[64];
    time_arg_fields(L, "amz_date", &tm);
    snprintf(buf, sizeof buf, "%04d%02d%02dT%02d%02d%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    lua_pushstring(L, buf);
    return 1;
}

static int time_rfc1123(lua_State *L)
{
    struct tm tm;
    char buf[64];
    time_arg_fields(L, "rfc1123", &tm);
    snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", day_names[tm.tm_wday % 7],
             tm.tm_mday, month_names[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
             tm.tm_sec);
    lua_pushstring(L, buf);
    return 1;
}

static int time_date(lua_State *L)
{
    struct tm tm;
    char buf[32];
    time_arg_fields(L, "date", &tm);
    snprintf(buf, sizeof buf, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    lua_pushstring(L, buf);
    return 1;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil). Plain arithmetic instead of timegm: glibc's timegm keeps a
 * static offset cache shared between threads, and this never reads TZ. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* Reads exactly n decimal digits at s; -1 if any is not a digit. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* The fraction after the seconds, if any, and the zone (Z or +hh:mm/-hh:mm)
 * that must end the string. Returns NULL and sets *out_seconds (the fraction
 * minus the zone offset), or an error reason. */
static const char *parse_zone(const char *s, size_t len, double *out_seconds)
{
    size_t i = 0;
    double frac = 0.0;
    if (i < len && s[i] == '.') {
        /* Nanoseconds as an integer, then one division: summing digit/10^k
         * would add rounding noise. Digits past the ninth are below a double's
         * resolution here and only checked. */
        long nanos = 0, scale = 100000000;
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, scale /= 10)
            nanos += (s[i] - '0') * scale;
        if (i == 1)
            return "no digits after the decimal point";
        frac = (double)nanos / 1e9;
    }
    if (i == len)
        return "missing time zone (Z or +hh:mm)";
    if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == len) {
        *out_seconds = frac;
        return NULL;
    }
    if ((s[i] != '+' && s[i] != '-') || len - i != 6 || s[i + 3] != ':')
        return "bad time zone (want Z or +hh:mm)";
    int oh = digits(s + i + 1, 2), om = digits(s + i + 4, 2);
    if (oh < 0 || om < 0 || oh > 23 || om > 59)
        return "bad time zone offset";
    int offset = (oh * 60 + om) * 60;
    *out_seconds = frac - (s[i] == '+' ? offset : -offset);
    return NULL;
}

/* Parses "YYYY-MM-DDTHH:MM:SS[.fff][Z|+hh:mm]" into Unix seconds; NULL on
 * success, else why it failed. */
static const char *parse_rfc3339(const char *s, size_t len, double *out)
{
    if (len < 19 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
        s[16] != ':')
        return "not an RFC 3339 time (want 2006-01-02T15:04:05Z)";
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    int h = digits(s + 11, 2), mi = digits(s + 14, 2), sec = digits(s + 17, 2);
    if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || sec < 0)
        return "not an RFC 3339 time (want 2006-01-02T15:04:05Z)";
    if (mo < 1 || mo > 12)
        return "month out of range";
    if (d < 1 || d > days_in_month(y, mo))
        return "day out of range";
    if (h > 23 || mi > 59 || sec > 59)
        return "time of day out of range";
    double zone = 0.0;
    const char *err = parse_zone(s + 19, len - 19, &zone);
    if (err != NULL)
        return err;
    int64_t whole = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    *out = (double)whole + zone;
    return NULL;
}

static int time_parse_iso8601(lua_State *L)
{
    if (lua_type(L, 1) != LUA_TSTRING)
        return luaL_error(L, "host.time.parse_iso8601: s must be a string (got %s)",
                          luaL_typename(L, 1));
    size_t len;
    const char *s = lua_tolstring(L, 1, &len);
    double t;
    const char *err = parse_rfc3339(s, len, &t);
    if (err != NULL) {
        lua_pushnil(L);
        lua_pushfstring(L, "host.time.parse_iso8601: %s", err);
        lua_pushliteral(L, "invalid_time");
        return 3;
    }
    lua_pushnumber(L, (lua_Number)t);
    return 1;
}

/* Blocks only the calling thread (other Lua states keep running). A signal
 * interrupting nanosleep restarts it with the time that was left. */
static int time_sleep(lua_State *L)
{
    if (lua_type(L, 1) != LUA_TNUMBER)
        return luaL_error(L, "host.time.sleep: seconds must be a number (got %s)",
                          luaL_typename(L, 1));
    double seconds = (double)lua_tonumber(L, 1);
    if (!(seconds >= 0.0 && seconds <= SLEEP_MAX_SECONDS)) /* also refuses NaN and inf */
        return luaL_error(L, "host.time.sleep: seconds must be between 0 and %d",
                          SLEEP_MAX_SECONDS);
    struct timespec left;
    left.tv_sec = (time_t)seconds;
    left.tv_nsec = (long)((seconds - (double)left.tv_sec) * 1e9);
    if (left.tv_nsec > 999999999L)
        left.tv_nsec = 999999999L;
    while (nanosleep(&left, &left) != 0 && errno == EINTR) {
    }
    return 0;
}

static const luaL_Reg time_functions[] = {
    {"now", time_now},
    {"monotonic", time_monotonic},
    {"iso8601", time_iso8601},
    {"iso8601_micro", time_iso8601_micro},
    {"amz_date", time_amz_date},
    {"rfc1123", time_rfc1123},
    {"date", time_date},
    {"parse_iso8601", time_parse_iso8601},
    {"sleep", time_sleep}, /* blocks the calling thread only */
    {NULL, NULL},
};

int luaopen_host_time(lua_State *L)
{
    luaL_newlib(L, time_functions);
    return 1;
}
