/* The C anchor for `synchronize` (issue 13): liburcu's QSBR flavour,
 * `synchronize_rcu` from a writer thread while two pinned reader threads
 * read an RCU-protected pointer in a loop and announce a quiescent state
 * every 1,000 reads (the shape of a worker passing a tick between task
 * polls); then the same with the readers offline (idle workers).
 *
 * Build and run: scripts/urcu-anchor (installs Debian's liburcu-dev when
 * missing). Prints the median and p99 of each phase, in microseconds.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <urcu-qsbr.h>

#define SAMPLES 2000
#define READS_PER_QS 1000

struct value { long a; };
static struct value *current;
static volatile int stop, readers_offline;
static long sink;

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *reader(void *arg) {
    pin((int)(long)arg);
    rcu_register_thread();
    long local = 0;
    while (!stop) {
        if (readers_offline) {
            rcu_thread_offline();
            while (readers_offline && !stop)
                sched_yield();
            rcu_thread_online();
            continue;
        }
        for (int i = 0; i < READS_PER_QS; i++) {
            struct value *v = rcu_dereference(current);
            local += v->a;
        }
        rcu_quiescent_state();
    }
    sink += local;
    rcu_unregister_thread();
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void phase(const char *name) {
    static double t[SAMPLES];
    for (int i = 0; i < SAMPLES; i++) {
        struct value *fresh = malloc(sizeof *fresh), *old;
        fresh->a = i;
        old = rcu_xchg_pointer(&current, fresh);
        double start = now_us();
        synchronize_rcu();
        t[i] = now_us() - start;
        free(old);
    }
    qsort(t, SAMPLES, sizeof t[0], cmp);
    printf("%s: p50 %.2f us, p99 %.2f us (%d samples)\n", name, t[SAMPLES / 2], t[SAMPLES * 99 / 100], SAMPLES);
}

int main(void) {
    current = malloc(sizeof *current);
    current->a = 1;
    pthread_t r[2];
    for (long i = 0; i < 2; i++)
        pthread_create(&r[i], NULL, reader, (void *)i);
    /* The writer is a third thread, unregistered (not a reader). */
    phase("liburcu-qsbr synchronize_rcu, 2 busy readers (qs every 1000 reads)");
    readers_offline = 1;
    struct timespec settle = {0, 10 * 1000 * 1000};
    nanosleep(&settle, NULL);
    phase("liburcu-qsbr synchronize_rcu, 2 readers offline");
    stop = 1;
    readers_offline = 0;
    for (int i = 0; i < 2; i++)
        pthread_join(r[i], NULL);
    free(current);
    return 0;
}
