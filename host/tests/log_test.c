/* SPDX-License-Identifier: Apache-2.0 */
/* ctest for the C API of log.h: lines from many threads never interleave,
 * redaction, level filtering, text quoting and truncation. Exits non-zero on failure. */
#include "bindings/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define THREADS 8
#define LINES_PER_THREAD 2000
#define BIG_THREADS 4
#define BIG_LINES 100
#define BIG_VALUE 12000 /* past PIPE_BUF, so the lock (not the kernel) keeps lines whole */

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

/* stderr is swapped for a temp file while a test writes, then read back. */
static int saved_stderr = -1;
static FILE *capture_file;

static void capture_begin(void)
{
    capture_file = tmpfile();
    if (capture_file == NULL) {
        perror("tmpfile");
        exit(2);
    }
    saved_stderr = dup(STDERR_FILENO);
    dup2(fileno(capture_file), STDERR_FILENO);
}

/* Restores stderr and returns what was written (malloc'd, NUL-terminated). */
static char *capture_end(size_t *len_out)
{
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    off_t len = lseek(fileno(capture_file), 0, SEEK_END); /* fd 2 shared the offset */
    char *buf = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (buf == NULL || pread(fileno(capture_file), buf, (size_t)len, 0) != (ssize_t)len) {
        perror("read capture");
        exit(2);
    }
    buf[len] = '\0';
    fclose(capture_file);
    *len_out = (size_t)len;
    return buf;
}

struct writer {
    int id;
    int lines;
    size_t value_size;
};

static void *writer_main(void *arg)
{
    const struct writer *w = arg;
    char thread[16], index[16];
    char *big = malloc(w->value_size + 1);
    memset(big, 'x', w->value_size);
    big[w->value_size] = '\0';
    snprintf(thread, sizeof thread, "%d", w->id);
    for (int i = 0; i < w->lines; i++) {
        snprintf(index, sizeof index, "%d", i);
        const char *fields[] = {"thread", thread, "i", index, "note", "a \"quoted\"\nvalue",
                                "pad",    big,    NULL};
        log_write(LOG_LEVEL_INFO, "concurrent line", fields);
    }
    free(big);
    return NULL;
}

/* Runs n writers and checks every line is one whole JSON-ish object. */
static void check_concurrent(int n, int lines, size_t value_size)
{
    pthread_t threads[THREADS];
    struct writer writers[THREADS];
    size_t len;
    log_configure(LOG_LEVEL_INFO, true);
    capture_begin();
    for (int t = 0; t < n; t++) {
        writers[t] = (struct writer){.id = t, .lines = lines, .value_size = value_size};
        pthread_create(&threads[t], NULL, writer_main, &writers[t]);
    }
    for (int t = 0; t < n; t++)
        pthread_join(threads[t], NULL);
    char *out = capture_end(&len);
    int count = 0, bad = 0, per_thread[THREADS] = {0};
    for (char *line = out, *end; *line != '\0'; line = end + 1) {
        end = strchr(line, '\n');
        CHECK(end != NULL, "last line has no newline");
        if (end == NULL)
            break;
        *end = '\0';
        count++;
        int id = -1;
        const char *at = strstr(line, "\"thread\":\"");
        if (at != NULL)
            id = atoi(at + 10);
        if (strncmp(line, "{\"ts\":\"", 7) != 0 || end[-1] != '}' || id < 0 || id >= n ||
            strstr(line, "\"msg\":\"concurrent line\"") == NULL ||
            strstr(line, "\"note\":\"a \\\"quoted\\\"\\nvalue\"") == NULL ||
            strlen(line) < value_size) {
            if (bad++ < 3)
                CHECK(0, "malformed line: %.200s", line);
            continue;
        }
        per_thread[id]++;
    }
    CHECK(count == n * lines, "got %d lines, want %d", count, n * lines);
    CHECK(bad == 0, "%d malformed lines", bad);
    for (int t = 0; t < n; t++)
        CHECK(per_thread[t] == lines, "thread %d wrote %d lines, want %d", t, per_thread[t], lines);
    free(out);
}

static void check_redaction(void)
{
    const char *fields[] = {"authorization",
                            "Bearer abc",
                            "Token",
                            "t1",
                            "PASSWORD",
                            "p1",
                            "secret",
                            "s1",
                            "github_token",
                            "t2",
                            "client_Secret",
                            "s2",
                            "secret_access_key",
                            "k1",
                            "tokenizer",
                            "visible1",
                            "keyboard",
                            "visible2",
                            "monkey",
                            "visible3",
                            "user",
                            "visible4",
                            NULL};
    size_t len;
    log_configure(LOG_LEVEL_DEBUG, true);
    capture_begin();
    log_write(LOG_LEVEL_INFO, "redaction", fields);
    char *out = capture_end(&len);
    for (int i = 0; fields[i] != NULL; i += 2) {
        char want[128];
        bool visible = strncmp(fields[i + 1], "visible", 7) == 0;
        snprintf(want, sizeof want, "\"%s\":\"%s\"", fields[i],
                 visible ? fields[i + 1] : "[redacted]");
        CHECK(strstr(out, want) != NULL, "want %s in %s", want, out);
        if (!visible)
            CHECK(strstr(out, fields[i + 1]) == NULL, "secret %s leaked: %s", fields[i + 1], out);
    }
    free(out);
}

static void check_levels(void)
{
    enum log_level level = LOG_LEVEL_DEBUG;
    size_t len;
    CHECK(log_level_parse("warning", &level) && level == LOG_LEVEL_WARN, "warning");
    CHECK(log_level_parse("debug", &level) && level == LOG_LEVEL_DEBUG, "debug");
    CHECK(log_level_parse("ERROR", &level) && level == LOG_LEVEL_ERROR, "ERROR");
    CHECK(!log_level_parse("verbose", &level), "verbose accepted");
    CHECK(!log_level_parse(NULL, &level), "NULL accepted");
    log_configure(LOG_LEVEL_WARN, false);
    CHECK(!log_enabled(LOG_LEVEL_INFO) && log_enabled(LOG_LEVEL_WARN), "enabled at warn");
    capture_begin();
    log_write(LOG_LEVEL_DEBUG, "hidden debug", NULL);
    log_write(LOG_LEVEL_INFO, "hidden info", NULL);
    log_write(LOG_LEVEL_WARN, "shown warn", NULL);
    log_write(LOG_LEVEL_ERROR, "shown error", NULL);
    char *out = capture_end(&len);
    CHECK(strstr(out, "hidden") == NULL, "filtered lines written: %s", out);
    CHECK(strstr(out, " WARN shown warn\n") != NULL, "warn line missing: %s", out);
    CHECK(strstr(out, " ERROR shown error\n") != NULL, "error line missing: %s", out);
    free(out);
}

static void check_text_and_truncation(void)
{
    const char *fields[] = {"plain",      "v",  "spaced", "two words", "eq", "a=b", "quote",
                            "say \"hi\"", "nl", "x\ny",   "empty",     "",   NULL};
    size_t len;
    log_configure(LOG_LEVEL_INFO, false);
    capture_begin();
    log_write(LOG_LEVEL_INFO, "text line", fields);
    char *out = capture_end(&len);
    const char *want = " INFO text line plain=v spaced=\"two words\" eq=\"a=b\" "
                       "quote=\"say \\\"hi\\\"\" nl=\"x\\ny\" empty=\"\"\n";
    CHECK(len > 24 && strcmp(out + 24, want) == 0, "text line: %s", out);
    free(out);

    char *huge = malloc(100001);
    memset(huge, 'm', 100000);
    huge[100000] = '\0';
    const char *small[] = {"after", "kept", NULL};
    log_configure(LOG_LEVEL_INFO, true);
    capture_begin();
    log_write(LOG_LEVEL_INFO, huge, small);
    out = capture_end(&len);
    CHECK(len <= 16384 && len > 8000, "truncated line is %zu bytes", len);
    CHECK(memchr(out, '\n', len) == out + len - 1, "truncated line is not one line");
    CHECK(strstr(out, "\"after\":\"kept\"") != NULL, "short field lost");
    CHECK(len > 21 && strcmp(out + len - 21, ",\"truncated\":\"true\"}\n") == 0, "mark: %s",
          out + (len > 40 ? len - 40 : 0));
    free(out);
    free(huge);
}

int main(void)
{
    check_concurrent(THREADS, LINES_PER_THREAD, 0);
    check_concurrent(BIG_THREADS, BIG_LINES, BIG_VALUE);
    check_redaction();
    check_levels();
    check_text_and_truncation();
    if (failures != 0) {
        printf("log_test: %d failure(s)\n", failures);
        return 1;
    }
    printf("log_test: ok\n");
    return 0;
}
