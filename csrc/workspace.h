/* workspace.h -- the one owner of scratch memory that lives within one C call.
 * Private to csrc/.
 *
 * Two arenas per thread, each grown to its high-water mark and then reused,
 * so a training loop allocates nothing in the steady state:
 *  - fnn_ws_thread: this thread's own scratch (GEMM packing buffers, the
 *    augmentation warp tables, a body's partial sums, im2col columns);
 *  - fnn_ws_shared: a region the calling thread hands to the workers of its
 *    parallel region (a B panel packed once for all threads, the partials of
 *    fnn_parallel_sum). Take it before fnn_parallel_region, never inside.
 * The contents do not survive to the next call that asks for more bytes.
 * A thread's arenas are freed when the thread ends (pthread key destructor),
 * or by fnn_ws_release. What backward needs from forward is not scratch: it
 * lives in the module's context (Python-owned arrays). */
#ifndef FASTNN_WORKSPACE_H
#define FASTNN_WORKSPACE_H

#include "fastnn.h"

/* At least `bytes` of 64-byte aligned scratch, or NULL (out of memory). */
void *fnn_ws_thread(size_t bytes);
void *fnn_ws_shared(size_t bytes);

/* Frees the calling thread's arenas (fnn_ws_release also asks every pool
 * worker to free its own: fnn_pool_release_workspaces, parallel.c). */
void fnn_ws_release_self(void);
void fnn_pool_release_workspaces(void);

/* fnn_ws_release, fnn_ws_bytes, fnn_ws_allocs: fastnn.h (public). Release
 * frees the calling thread's arenas and those of the workers of its parallel
 * region (each worker frees its own); other application threads' arenas are
 * theirs, and go when those threads end. */

#endif
