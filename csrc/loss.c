/* loss.c -- the two drivers every loss kernel runs on (loss_xent.c,
 * loss_reg.c).
 *
 * Determinism. Row losses (cross-entropy, NLL, multi-margin) work on (N,C)
 * rows; threads take contiguous row ranges and each row is computed the same
 * way whatever the thread count. Per-row losses are float64 and summed in row
 * order after the parallel region. Element-wise losses (MSE, BCE-with-logits)
 * sum float64 partials over a fixed partition of the flat array into
 * LOSS_BLOCK elements, combined in block order. Inner loops keep LANES
 * independent partial sums/maxima in small arrays, a form GCC vectorises
 * without reassociating anything (the build has no -ffast-math, and
 * -ffp-contract=off), so results are bitwise independent of the thread count
 * and of the vector width.
 *
 * ISA variants. The per-row/per-block bodies are plain C, instantiated three
 * times: portable (baseline SSE2 on x86-64), and with AVX2 / AVX-512 enabled
 * by function attribute (wider vectors for the same C, so the same results),
 * picked by fnn_get_isa() like the GEMM micro-kernels.
 *
 * Validation. Nothing but the class indices is checked here (a wrong one
 * would read out of bounds: FNN_EINDEX). Every forward kernel makes a NaN or
 * infinity in its inputs, or a target outside its domain, show up as a
 * NaN/infinite total, and the Python caller inspects the inputs only then
 * (saving a pass over the data on every call).
 */
#include "loss.h"

typedef struct {
    range_fn fn;
    const job *J;
} loss_task;

static int rows_part(void *c, ptrdiff_t lo, ptrdiff_t hi, int part)
{
    const loss_task *T = c;
    (void)part;
    T->fn(T->J, lo, hi);
    return FNN_OK;
}

int loss_run_rows(ptrdiff_t N, double cost, range_fn fn, const job *J)
{
    if (J->ti) {
        const uint64_t C = (uint64_t)J->C;
        int bad = 0;
        for (ptrdiff_t i = 0; i < N; i++)
            bad |= (uint64_t)J->ti[i] >= C;
        if (bad)
            return FNN_EINDEX;
    }
    loss_task T = {fn, J};
    return fnn_parallel_for(N, 1, (double)N * J->C * cost * FNN_COST_ELEM, rows_part, &T);
}

static double blocks_sum(void *c, ptrdiff_t lo, ptrdiff_t hi)
{
    const loss_task *T = c;
    return T->fn(T->J, lo, hi);
}

static int blocks_part(void *c, ptrdiff_t lo, ptrdiff_t hi, int part)
{
    const loss_task *T = c;
    (void)part;
    T->fn(T->J, lo, hi);
    return FNN_OK;
}

int loss_run_blocks(ptrdiff_t n, range_fn fn, const job *J, double *total)
{
    loss_task T = {fn, J};
    const double flops = (double)n * ELEM_COST * FNN_COST_ELEM;
    if (total)
        return fnn_parallel_sum(n, LOSS_BLOCK, flops, blocks_sum, &T, total);
    return fnn_parallel_for(n, LOSS_BLOCK, flops, blocks_part, &T);
}
