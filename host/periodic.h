/* SPDX-License-Identifier: Apache-2.0 */
/* One background thread running a few tasks, each at its own interval
 * (certificate reload, the Lua app's periodic task). */
#ifndef PERIODIC_H
#define PERIODIC_H

#include <stddef.h>

struct periodic_task {
    double interval; /* seconds */
    void (*run)(void *context);
    void *context;
};

enum { PERIODIC_MAX_TASKS = 4 };

struct periodic;

/// Starts the thread; the first run of each task is one interval from now.
struct periodic *periodic_start(const struct periodic_task *tasks, size_t count);

/// Stops the thread (waiting for a running task to finish) and frees it.
void periodic_stop(struct periodic *p);

#endif
