/* tools/core_pingpong.c -- how far apart two CPUs are: the round trip of
 * one cache line between two threads pinned to them (each waits for the
 * other's write of an atomic counter, then writes its own). Built and run by
 * tools/core_pingpong.sh; see there. A round trip within one L3 takes tens of
 * ns; across L3s (another CCX or die, or another socket) hundreds. On a VM
 * the answer can change from minute to minute as the hypervisor moves the
 * vCPUs, and with it every 2-thread figure that hands data between threads.
 * A time limit ends a run whose two threads share one CPU (no CPU pair, or
 * a pinning the kernel refused) instead of spinning for minutes. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static _Alignas(64) atomic_long turn;   /* odd: the other thread's move */
static _Alignas(64) atomic_int stop;
static long rounds;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static void *other(void *arg)
{
    (void)arg;
    for (long i = 0; i < rounds; i++) {
        while (atomic_load_explicit(&turn, memory_order_acquire) != 2 * i + 1)
            if (atomic_load_explicit(&stop, memory_order_relaxed))
                return NULL;
        atomic_store_explicit(&turn, 2 * i + 2, memory_order_release);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int a = argc > 1 ? atoi(argv[1]) : 0, b = argc > 2 ? atoi(argv[2]) : 1;
    rounds = argc > 3 ? atol(argv[3]) : 100000;
    cpu_set_t sa, sb;
    CPU_ZERO(&sa);
    CPU_ZERO(&sb);
    if (a < 0 || b < 0 || a >= CPU_SETSIZE || b >= CPU_SETSIZE || rounds < 1) {
        fprintf(stderr, "usage: core_pingpong [CPU_A CPU_B [ROUNDS]]\n");
        return 2;
    }
    CPU_SET(a, &sa);
    CPU_SET(b, &sb);
    pthread_attr_t attr;
    pthread_t t;
    if (pthread_setaffinity_np(pthread_self(), sizeof sa, &sa)
        || pthread_attr_init(&attr) || pthread_attr_setaffinity_np(&attr, sizeof sb, &sb)
        || pthread_create(&t, &attr, other, NULL)) {
        fprintf(stderr, "core_pingpong: cannot run threads on CPUs %d and %d\n", a, b);
        return 2;
    }
    const double t0 = now(), limit = 10.0;
    long done = 0;
    for (; done < rounds; done++) {
        atomic_store_explicit(&turn, 2 * done + 1, memory_order_release);
        while (atomic_load_explicit(&turn, memory_order_acquire) != 2 * done + 2)
            ;
        if ((done & 15) == 15 && now() - t0 > limit)
            break;
    }
    const double dt = now() - t0;
    const long trips = done < rounds ? done + 1 : done;   /* the break follows a whole trip */
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
    printf("CPU %d <-> CPU %d: %.1f ns a round trip (%ld rounds in %.3f s)%s\n", a, b,
           1e9 * dt / trips, trips, dt, done < rounds ? " -- stopped at the time limit" : "");
    return 0;
}
