/* SPDX-License-Identifier: Apache-2.0 */
/* ctest for opts.c: the index flags and the {i} each request number gets. */
#include "opts.h"

#include <stdio.h>
#include <string.h>

static int failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

/* Parses the base flags plus extra (NULL-terminated); returns opts_parse's answer. */
static bool parse(struct lg_opts *o, char *err, size_t errlen, const char *const *extra)
{
    const char *argv[32] = {"loadgen", "--url", "https://127.0.0.1:1/", "--cacert", "ca.crt",
                            "--requests", "1"};
    int argc = 7;
    for (; *extra != NULL && argc < 31; extra++)
        argv[argc++] = *extra;
    return opts_parse(argc, (char **)argv, o, err, errlen);
}

static void test_index(void)
{
    struct lg_opts o;
    char err[256];

    CHECK(parse(&o, err, sizeof err, (const char *const[]){"--index-start", "5", NULL}));
    CHECK(o.index_modulo == 0);
    CHECK(opts_index(&o, 0) == 5 && opts_index(&o, 7) == 12); /* no modulo: counts on */
    opts_free(&o);

    CHECK(parse(&o, err, sizeof err,
                (const char *const[]){"--index-start", "100", "--index-modulo=3", NULL}));
    long long want[] = {100, 101, 102, 100, 101, 102, 100};
    for (long long n = 0; n < 7; n++)
        CHECK(opts_index(&o, n) == want[n]);
    opts_free(&o);

    CHECK(parse(&o, err, sizeof err, (const char *const[]){"--index-modulo", "1", NULL}));
    CHECK(opts_index(&o, 0) == 0 && opts_index(&o, 99) == 0); /* one index, over and over */
    opts_free(&o);

    CHECK(!parse(&o, err, sizeof err, (const char *const[]){"--index-modulo", "0", NULL}));
    CHECK(strstr(err, "--index-modulo") != NULL);
    opts_free(&o);
    CHECK(!parse(&o, err, sizeof err, (const char *const[]){"--index-modulo", "-2", NULL}));
    opts_free(&o);
    CHECK(!parse(&o, err, sizeof err, (const char *const[]){"--index-modulo", NULL}));
    CHECK(strstr(err, "needs a value") != NULL);
    opts_free(&o);
}

int main(void)
{
    test_index();
    if (failures > 0)
        fprintf(stderr, "%d checks failed\n", failures);
    return failures > 0;
}
