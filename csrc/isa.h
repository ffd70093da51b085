/* isa.h -- the one per-ISA clone macro. Private to csrc/.
 *
 * A kernel body is plain C written once as an always-inline function; the
 * macro compiles it three times -- for the baseline ISA (the `ref` path: SSE2
 * on x86-64, whatever the compiler targets elsewhere), for AVX2+FMA and for
 * AVX-512 -- by function attribute, and FNN_ISA_PICK chooses the copy for
 * the path fastnn selected (fastnn.set_isa / FASTNN_ISA, cpu.c). The build
 * uses -ffp-contract=off and no -ffast-math, so every copy performs the same
 * IEEE operations in the same order: wider vectors, the same bits.
 * Hand-written intrinsics (the GEMM micro-kernels, rng.c's AVX2 Philox) use
 * the target attributes FNN_TARGET_AVX2 / FNN_TARGET_AVX512 directly. */
#ifndef FASTNN_ISA_H
#define FASTNN_ISA_H

#include "fastnn.h"

#define FNN_INLINE static inline __attribute__((always_inline))

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define FNN_MULTI_ISA 1
#define FNN_TARGET_AVX2 __attribute__((target("avx2,fma")))
#if defined(__clang__)
#define FNN_TARGET_AVX512 \
    __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")))
#else
#define FNN_TARGET_AVX512 \
    __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,prefer-vector-width=512")))
#endif
#endif

/* From `FNN_INLINE ret name##_body params`, define the three copies and the
 * table name##_isa[FNN_ISA_REF..FNN_ISA_AVX512]; ret must not be void (a
 * parallel body returns an int status). `args` passes params on. */
#ifdef FNN_MULTI_ISA
#define FNN_ISA_CLONES(ret, name, params, args)                                  \
    static ret name##_ref params { return name##_body args; }                    \
    FNN_TARGET_AVX2 static ret name##_avx2 params { return name##_body args; }   \
    FNN_TARGET_AVX512 static ret name##_avx512 params { return name##_body args; } \
    static ret (*const name##_isa[3]) params = {name##_ref, name##_avx2, name##_avx512};
#else
#define FNN_ISA_CLONES(ret, name, params, args)                                  \
    static ret name##_ref params { return name##_body args; }                    \
    static ret (*const name##_isa[3]) params = {name##_ref, name##_ref, name##_ref};
#endif

#define FNN_ISA_PICK(name) (name##_isa[fnn_get_isa()])

/* The common case: a fnn_parallel_for body (see parallel.h). */
#define FNN_RANGE_CLONES(name)                                                   \
    FNN_ISA_CLONES(int, name, (void *ctx, ptrdiff_t lo, ptrdiff_t hi, int part), \
                   (ctx, lo, hi, part))

#endif
