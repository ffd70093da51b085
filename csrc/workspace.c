/* workspace.c -- per-thread scratch arenas (see workspace.h).
 *
 * Each thread that asks gets a small record with two buffers (its own
 * scratch and the region it shares with its workers), registered under a
 * pthread key whose destructor frees them when the thread ends: short-lived
 * Python threads give their memory back (the pool workers of parallel.c live
 * as long as the process; fnn_ws_release frees theirs). Buffers grow to the
 * largest request rounded up to a power of two (at least 64 KiB) and are
 * otherwise kept. Large buffers come straight from mmap so that freeing one
 * returns it to the system (malloc would keep it in a per-thread arena);
 * under AddressSanitizer they come from posix_memalign so that overruns are
 * caught. */
#define _DEFAULT_SOURCE 1  /* mmap flags, posix_memalign */
#include "workspace.h"
#include "parallel.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#define WS_USE_MMAP 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WS_USE_MMAP 0
#endif
#endif
#ifndef WS_USE_MMAP
#define WS_USE_MMAP 1
#endif

#define WS_ROUND ((size_t)64 * 1024)

typedef struct {
    void *p;
    size_t cap;
} ws_buf;

typedef struct {
    ws_buf own, shared;
} ws_arena;

static pthread_key_t g_key;
static pthread_once_t g_key_once = PTHREAD_ONCE_INIT;
static _Thread_local ws_arena *tl_arena;
static size_t g_bytes, g_allocs;     /* updated with atomic builtins */

static void buf_free(ws_buf *b)
{
    if (!b->p)
        return;
#if WS_USE_MMAP
    munmap(b->p, b->cap);
#else
    free(b->p);
#endif
    __atomic_sub_fetch(&g_bytes, b->cap, __ATOMIC_RELAXED);
    b->p = NULL;
    b->cap = 0;
}

static void *buf_get(ws_buf *b, size_t bytes)
{
    if (bytes <= b->cap && b->p)
        return b->p;
    buf_free(b);
    /* a power of two (at least 64 KiB): the calls of a training step fall
     * into one or two sizes, so a thread reaches its high-water mark after
     * a growth or two, whichever parts it happened to run */
    size_t cap = WS_ROUND;
    while (cap < bytes && cap < ((size_t)1 << 62))
        cap *= 2;
    void *p = NULL;
#if WS_USE_MMAP
    p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        p = NULL;
#else
    if (posix_memalign(&p, 64, cap) != 0)
        p = NULL;
#endif
    if (!p)
        return NULL;
    b->p = p;
    b->cap = cap;
    __atomic_add_fetch(&g_bytes, cap, __ATOMIC_RELAXED);
    __atomic_add_fetch(&g_allocs, 1, __ATOMIC_RELAXED);
    return p;
}

static void arena_destroy(void *v)
{
    ws_arena *a = v;
    buf_free(&a->own);
    buf_free(&a->shared);
    free(a);
    tl_arena = NULL;     /* runs in the thread that is ending */
}

static void make_key(void)
{
    pthread_key_create(&g_key, arena_destroy);
}

static ws_arena *arena(void)
{
    if (tl_arena)
        return tl_arena;
    pthread_once(&g_key_once, make_key);
    ws_arena *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    if (pthread_setspecific(g_key, a) != 0) {
        free(a);
        return NULL;
    }
    tl_arena = a;
    return a;
}

void *fnn_ws_thread(size_t bytes)
{
    ws_arena *a = arena();
    return a ? buf_get(&a->own, bytes) : NULL;
}

void *fnn_ws_shared(size_t bytes)
{
    ws_arena *a = arena();
    return a ? buf_get(&a->shared, bytes) : NULL;
}

void fnn_ws_release_self(void)
{
    if (tl_arena) {
        buf_free(&tl_arena->own);
        buf_free(&tl_arena->shared);
    }
}

void fnn_ws_release(void)
{
    fnn_ws_release_self();
    fnn_pool_release_workspaces();
}

size_t fnn_ws_bytes(void)
{
    return __atomic_load_n(&g_bytes, __ATOMIC_RELAXED);
}

size_t fnn_ws_allocs(void)
{
    return __atomic_load_n(&g_allocs, __ATOMIC_RELAXED);
}
