/* rng.c -- counter-based random numbers: Philox4x32-10 and what is built on
 * it (uniform and normal fills, dropout, Gaussian noise).
 *
 * Philox4x32-10 (Salmon, Moraes, Dror, Shaw: "Parallel random numbers: as
 * easy as 1, 2, 3", SC'11) is a keyed bijection of a 128-bit counter: ten
 * rounds of two 32x32->64 multiplies, with a Weyl-sequence key schedule.
 *
 * Stream layout. A 64-bit seed is the key (low word, high word). Element j
 * of the stream (j = offset + i for the i-th value a call writes) uses 32-bit
 * word j % 4 of the block whose counter is (j / 4 low word, j / 4 high word,
 * 0, 0). So every value depends only on (seed, j): not on the thread count,
 * the partition or the call's chunking. Normals use Box-Muller on the word
 * pairs (0,1) and (2,3) of a block: element j is r*cos(theta) for even j and
 * r*sin(theta) for odd j, both from the pair j/2.
 *
 * The fast paths work in tiles: Philox for TILE_BLOCKS consecutive blocks is
 * computed lane-parallel into a stack buffer (plain C the compiler
 * vectorises on the ref and AVX-512 paths, intrinsics on AVX2: philox_avx2),
 * then a second, vectorisable loop turns words into the output. Box-Muller
 * uses float polynomials for log and sin/cos (no libm calls in the loop);
 * fnn_rng_normal_naive is the double
 * precision libm twin it is tested against.
 */
#include "fastnn.h"

#include <math.h>
#include <string.h>
#include "fmath.h"
#include "parallel.h"

/* Every loop below is plain C the compiler vectorises, compiled per ISA path
 * (isa.h). Only integer ops and correctly rounded float ops (+ - * / sqrt,
 * no contraction) are used, so all three give bitwise equal results. */

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

#define TILE_BLOCKS 64                   /* blocks per tile: 256 values */
#define TILE (4 * TILE_BLOCKS)

/* Elements per thread below which a kernel stays on one thread. */

void fnn_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2],
                       uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

/* Words of blocks [b0, b0 + nb), nb <= TILE_BLOCKS + 1, interleaved: w[4*b + k]
 * is word k of block b0 + b. The counter's high words are (b0 + b) >> 32 and
 * 0, 0. The portable copy: the ref and AVX-512 paths compile it. */
FNN_INLINE int philox_body(uint64_t seed, uint64_t b0, int nb, uint32_t *w)
{
    /* nb <= TILE_BLOCKS + 1: a tile that starts mid-block spans one more */
    uint32_t c0[TILE_BLOCKS + 1], c1[TILE_BLOCKS + 1], c2[TILE_BLOCKS + 1],
        c3[TILE_BLOCKS + 1];
    const uint32_t key0 = (uint32_t)seed, key1 = (uint32_t)(seed >> 32);
    for (int b = 0; b < nb; b++) {
        uint64_t ctr = b0 + (uint64_t)b;
        uint32_t x0 = (uint32_t)ctr, x1 = (uint32_t)(ctr >> 32), x2 = 0, x3 = 0;
        uint32_t k0 = key0, k1 = key1;
        for (int r = 0; r < 10; r++) {
            uint64_t p0 = (uint64_t)PHILOX_M0 * x0;
            uint64_t p1 = (uint64_t)PHILOX_M1 * x2;
            uint32_t n0 = (uint32_t)(p1 >> 32) ^ x1 ^ k0;
            uint32_t n2 = (uint32_t)(p0 >> 32) ^ x3 ^ k1;
            x1 = (uint32_t)p1;
            x3 = (uint32_t)p0;
            x0 = n0;
            x2 = n2;
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        c0[b] = x0; c1[b] = x1; c2[b] = x2; c3[b] = x3;
    }
    for (int b = 0; b < nb; b++) {
        w[4 * b + 0] = c0[b];
        w[4 * b + 1] = c1[b];
        w[4 * b + 2] = c2[b];
        w[4 * b + 3] = c3[b];
    }
    return 0;
}

#ifdef FNN_MULTI_ISA
#include <immintrin.h>

/* hi and lo words of x * m in each 32-bit lane: the even lanes' 64-bit
 * products and the odd lanes' (shifted down), blended back together. */
FNN_TARGET_AVX2 static inline __attribute__((always_inline)) void
mul_hilo(__m256i x, __m256i m, __m256i *hi, __m256i *lo)
{
    __m256i pe = _mm256_mul_epu32(x, m), po = _mm256_mul_epu32(_mm256_srli_epi64(x, 32), m);
    *lo = _mm256_blend_epi32(pe, _mm256_slli_epi64(po, 32), 0xAA);
    *hi = _mm256_blend_epi32(_mm256_srli_epi64(pe, 32), po, 0xAA);
}

#define PHILOX_GROUPS 2       /* 8-block vectors in flight */

/* The AVX2 copy, by hand: a block per 32-bit lane, PHILOX_GROUPS x 8 blocks
 * at a time, the words transposed into w's interleaved order at the end;
 * the last blocks (fewer than a group) through philox_body. Compiled from
 * C, the 32x32 -> 64-bit products went through 64-bit lanes and back,
 * mostly shuffles: 2.1-2.5 ns a word on a Zen 3 against 0.9 here (1
 * thread, a tile of 64 blocks; the same words, tests/test_rng.py). */
FNN_TARGET_AVX2 static int philox_avx2(uint64_t seed, uint64_t b0, int nb, uint32_t *w)
{
    const __m256i m0 = _mm256_set1_epi32((int)PHILOX_M0), m1 = _mm256_set1_epi32((int)PHILOX_M1);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i sign = _mm256_set1_epi32((int)0x80000000u);
    uint32_t k0[10], k1[10];
    k0[0] = (uint32_t)seed;
    k1[0] = (uint32_t)(seed >> 32);
    for (int r = 1; r < 10; r++) {
        k0[r] = k0[r - 1] + PHILOX_W0;
        k1[r] = k1[r - 1] + PHILOX_W1;
    }
    int b = 0;
    for (; b + 8 * PHILOX_GROUPS <= nb; b += 8 * PHILOX_GROUPS) {
        __m256i x0[PHILOX_GROUPS], x1[PHILOX_GROUPS], x2[PHILOX_GROUPS], x3[PHILOX_GROUPS];
        for (int g = 0; g < PHILOX_GROUPS; g++) {
            const uint64_t c = b0 + (uint64_t)(b + 8 * g);
            const __m256i lo = _mm256_set1_epi32((int)(uint32_t)c);
            x0[g] = _mm256_add_epi32(lo, lane);
            /* the high word, plus one in the lanes where the low word wrapped
             * (x0 < lo unsigned: the compare's -1 subtracted) */
            x1[g] = _mm256_sub_epi32(_mm256_set1_epi32((int)(uint32_t)(c >> 32)),
                                     _mm256_cmpgt_epi32(_mm256_xor_si256(lo, sign),
                                                        _mm256_xor_si256(x0[g], sign)));
            x2[g] = x3[g] = _mm256_setzero_si256();
        }
        for (int r = 0; r < 10; r++) {
            const __m256i key0 = _mm256_set1_epi32((int)k0[r]), key1 = _mm256_set1_epi32((int)k1[r]);
            for (int g = 0; g < PHILOX_GROUPS; g++) {
                __m256i h0, l0, h1, l1;
                mul_hilo(x0[g], m0, &h0, &l0);
                mul_hilo(x2[g], m1, &h1, &l1);
                x0[g] = _mm256_xor_si256(_mm256_xor_si256(h1, x1[g]), key0);
                x2[g] = _mm256_xor_si256(_mm256_xor_si256(h0, x3[g]), key1);
                x1[g] = l1;
                x3[g] = l0;
            }
        }
        for (int g = 0; g < PHILOX_GROUPS; g++) {
            /* lane i of x0..x3 -> w[4 i .. 4 i + 3]: u0 holds blocks 0 | 4,
             * u1 1 | 5, u2 2 | 6, u3 3 | 7 (128-bit halves) */
            __m256i t0 = _mm256_unpacklo_epi32(x0[g], x1[g]), t1 = _mm256_unpackhi_epi32(x0[g], x1[g]);
            __m256i t2 = _mm256_unpacklo_epi32(x2[g], x3[g]), t3 = _mm256_unpackhi_epi32(x2[g], x3[g]);
            __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
            __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
            __m256i *d = (__m256i *)(w + 4 * (b + 8 * g));
            _mm256_storeu_si256(d, _mm256_permute2x128_si256(u0, u1, 0x20));
            _mm256_storeu_si256(d + 1, _mm256_permute2x128_si256(u2, u3, 0x20));
            _mm256_storeu_si256(d + 2, _mm256_permute2x128_si256(u0, u1, 0x31));
            _mm256_storeu_si256(d + 3, _mm256_permute2x128_si256(u2, u3, 0x31));
        }
    }
    if (b < nb)
        philox_body(seed, b0 + (uint64_t)b, nb - b, w + 4 * b);
    return 0;
}

static int philox_ref(uint64_t seed, uint64_t b0, int nb, uint32_t *w)
{
    return philox_body(seed, b0, nb, w);
}

FNN_TARGET_AVX512 static int philox_avx512(uint64_t seed, uint64_t b0, int nb, uint32_t *w)
{
    return philox_body(seed, b0, nb, w);
}

static int (*const philox_isa[3])(uint64_t, uint64_t, int, uint32_t *) = {
    philox_ref, philox_avx2, philox_avx512};
#else
FNN_ISA_CLONES(int, philox, (uint64_t seed, uint64_t b0, int nb, uint32_t *w), (seed, b0, nb, w))
#endif

/* Stream values j in [j0, j0 + n) as words: the tile that holds them starts
 * at word 4 * (j0 / 4); returns the index of j0 inside that tile's buffer.
 * The path's copy of Philox is picked per tile (an indirect call per 256
 * words). */
FNN_INLINE int tile_words(uint64_t seed, uint64_t j0, size_t n, uint32_t *w)
{
    uint64_t b0 = j0 >> 2;
    uint64_t b1 = (j0 + n + 3) >> 2;
    FNN_ISA_PICK(philox)(seed, b0, (int)(b1 - b0), w);
    return (int)(j0 & 3);
}

/* ------------------------------------------------ float transcendentals -- */


/* -2 ln(u) for u in (0, 1], given also omu = 1 - u computed without
 * cancellation: u = m 2^e with m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(t),
 * t = (m-1)/(m+1), |t| <= 0.1716 (series to t^9). For e == 0 (u near 1,
 * where float u has lost the low bits of 1 - u) m - 1 is taken as -omu. */
FNN_INLINE float minus2log(float u, float omu)
{
    uint32_t bits = fnn_f2u(u);
    int32_t e = (int32_t)(bits >> 23) - 127;
    /* mantissa above sqrt(2) (bits 0x3504F3): use m/2 and e+1; integer
     * masks rather than float compares and selects keep the loop branch-free
     * (vectorisable without -fno-trapping-math) */
    uint32_t big = (uint32_t)0 - (uint32_t)((bits & 0x007FFFFFu) > 0x003504F3u);
    float m = fnn_u2f((bits & 0x007FFFFFu) | (0x3F800000u - (big & 0x00800000u)));
    e += (int32_t)(big & 1u);
    uint32_t near1 = (uint32_t)0 - (uint32_t)(e == 0);
    float num = fnn_u2f((fnn_f2u(-omu) & near1) | (fnn_f2u(m - 1.0f) & ~near1));
    float t = num / (m + 1.0f);
    float t2 = t * t;
    float p = 1.0f / 9.0f;
    p = p * t2 + 1.0f / 7.0f;
    p = p * t2 + 1.0f / 5.0f;
    p = p * t2 + 1.0f / 3.0f;
    p = p * t2 + 1.0f;
    float lnm = 2.0f * t * p;
    float fe = (float)e;
    /* ln 2 = hi + lo, hi with a short mantissa so fe * hi is exact */
    float ln_u = fe * 0.693145752f + (fe * 1.42860677e-06f + lnm);
    return -2.0f * ln_u;
}

/* sin and cos of 2 pi k / 2^24 for an integer k in [0, 2^24): the quadrant
 * q = round(k / 2^22) is taken in integers, the rest a = 2 pi f with
 * |f| <= 1/8 turn goes through Taylor polynomials (|a| <= pi/4). */
FNN_INLINE void sincos_turn24(int32_t k, float *s_out, float *c_out)
{
    int32_t q = (k + (1 << 21)) >> 22;            /* 0..4 */
    float f = (float)(k - (q << 22));             /* [-2^21, 2^21], exact */
    float a = f * (6.28318530717958648f / 16777216.0f);
    float a2 = a * a;
    float s = -1.0f / 39916800.0f;
    s = s * a2 + 1.0f / 362880.0f;
    s = s * a2 - 1.0f / 5040.0f;
    s = s * a2 + 1.0f / 120.0f;
    s = s * a2 - 1.0f / 6.0f;
    s = a + a * a2 * s;
    float c = 1.0f / 479001600.0f;
    c = c * a2 - 1.0f / 3628800.0f;
    c = c * a2 + 1.0f / 40320.0f;
    c = c * a2 - 1.0f / 720.0f;
    c = c * a2 + 1.0f / 24.0f;
    c = c * a2 - 0.5f;
    c = 1.0f + a2 * c;
    /* rotate by q quarter turns, (sin, cos)(a + q pi/2), with bit masks:
     * odd q swaps sin and cos; q = 2, 3 negates sin; q = 1, 2 negates cos */
    uint32_t swap = (uint32_t)0 - ((uint32_t)q & 1u);
    uint32_t su = fnn_f2u(s), cu = fnn_f2u(c);
    uint32_t sr = (cu & swap) | (su & ~swap);
    uint32_t cr = (su & swap) | (cu & ~swap);
    sr ^= ((uint32_t)q & 2u) << 30;
    cr ^= (((uint32_t)q + 1u) & 2u) << 30;
    *s_out = fnn_u2f(sr);
    *c_out = fnn_u2f(cr);
}

/* Box-Muller on the words of one tile: z[2p], z[2p+1] from w[2p], w[2p+1]
 * for pairs p in [0, npairs). */
FNN_INLINE void box_muller(const uint32_t *w, int npairs, float *z)
{
    for (int p = 0; p < npairs; p++) {
        uint32_t a = w[2 * p], b = w[2 * p + 1];
        /* u1 in (0, 1]: (k + 1/2) / 2^31 with k = floor(a / 2); 1 - u1 from
         * the complementary integer, so it keeps its precision near u1 = 1 */
        int32_t k = (int32_t)(a >> 1);
        float u1 = ((float)k + 0.5f) * (1.0f / 2147483648.0f);
        float omu = ((float)(0x7FFFFFFF - k) + 0.5f) * (1.0f / 2147483648.0f);
        float r = sqrtf(minus2log(u1, omu));
        float s, c;
        sincos_turn24((int32_t)(b >> 8), &s, &c);
        z[2 * p] = r * c;
        z[2 * p + 1] = r * s;
    }
}

/* ------------------------------------------------------------ threading -- */

/* [0, n) in parts on TILE boundaries; `cost` streaming elements each (one
 * Philox block makes four words: a word costs about two). */
static void run_parallel(size_t n, double cost, int (*body)(void *, ptrdiff_t, ptrdiff_t, int),
                         void *ctx)
{
    fnn_parallel_for((ptrdiff_t)n, TILE, (double)n * cost * 2.0 * FNN_COST_ELEM, body, ctx);
}

/* --------------------------------------------------------------- fills -- */

typedef struct {
    uint64_t seed, offset;
    void *out;
    float mean, std;
} fill_ctx;

FNN_INLINE int bits_body(void *vc, ptrdiff_t lo_, ptrdiff_t hi_, int part_)
{
    const size_t i0 = (size_t)lo_, i1 = (size_t)hi_;
    (void)part_;
    fill_ctx *c = vc;
    uint32_t *out = c->out;
    uint32_t w[TILE + 4];
    for (size_t i = i0; i < i1; i += TILE) {
        size_t n = i1 - i < TILE ? i1 - i : TILE;
        int at = tile_words(c->seed, c->offset + i, n, w);
        memcpy(out + i, w + at, n * sizeof(uint32_t));
    }
    return 0;
}

FNN_RANGE_CLONES(bits)

void fnn_rng_bits(uint64_t seed, uint64_t offset, uint32_t *out, size_t n)
{
    fill_ctx c = {seed, offset, out, 0.0f, 0.0f};
    run_parallel(n, 1.0, FNN_ISA_PICK(bits), &c);
}

FNN_INLINE int uniform_body(void *vc, ptrdiff_t lo_, ptrdiff_t hi_, int part_)
{
    const size_t i0 = (size_t)lo_, i1 = (size_t)hi_;
    (void)part_;
    fill_ctx *c = vc;
    float *out = c->out;
    uint32_t w[TILE + 4];
    for (size_t i = i0; i < i1; i += TILE) {
        size_t n = i1 - i < TILE ? i1 - i : TILE;
        int at = tile_words(c->seed, c->offset + i, n, w);
        const uint32_t *src = w + at;
        float *dst = out + i;
        for (size_t k = 0; k < n; k++)
            dst[k] = (float)(int32_t)(src[k] >> 8) * (1.0f / 16777216.0f);
    }
    return 0;
}

FNN_RANGE_CLONES(uniform)

void fnn_rng_uniform(uint64_t seed, uint64_t offset, float *out, size_t n)
{
    fill_ctx c = {seed, offset, out, 0.0f, 0.0f};
    run_parallel(n, 1.0, FNN_ISA_PICK(uniform), &c);
}

FNN_INLINE int normal_body(void *vc, ptrdiff_t lo_, ptrdiff_t hi_, int part_)
{
    const size_t i0 = (size_t)lo_, i1 = (size_t)hi_;
    (void)part_;
    fill_ctx *c = vc;
    float *out = c->out;
    const float mean = c->mean, std = c->std;
    uint32_t w[TILE + 4];
    float z[TILE + 4];
    for (size_t i = i0; i < i1; i += TILE) {
        size_t n = i1 - i < TILE ? i1 - i : TILE;
        int at = tile_words(c->seed, c->offset + i, n, w);
        box_muller(w, (at + (int)n + 1) / 2, z);
        const float *src = z + at;
        float *dst = out + i;
        for (size_t k = 0; k < n; k++)
            dst[k] = mean + std * src[k];
    }
    return 0;
}

FNN_RANGE_CLONES(normal)

void fnn_rng_normal(uint64_t seed, uint64_t offset, float *out, size_t n,
                    float mean, float std)
{
    fill_ctx c = {seed, offset, out, mean, std};
    run_parallel(n, 4.0, FNN_ISA_PICK(normal), &c);
}

void fnn_rng_normal_naive(uint64_t seed, uint64_t offset, float *out, size_t n,
                          float mean, float std)
{
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    for (size_t i = 0; i < n; i++) {
        uint64_t j = offset + i;
        uint64_t blk = j >> 2;
        uint32_t ctr[4] = {(uint32_t)blk, (uint32_t)(blk >> 32), 0, 0}, w[4];
        fnn_philox4x32_10(ctr, key, w);
        int pair = (int)(j & 2);
        double u1 = ((double)(w[pair] >> 1) + 0.5) / 2147483648.0;
        double u2 = (double)(w[pair + 1] >> 8) / 16777216.0;
        double r = sqrt(-2.0 * log(u1));
        double th = 6.283185307179586 * u2;
        double z = (j & 1) ? r * sin(th) : r * cos(th);
        out[i] = (float)((double)mean + (double)std * z);
    }
}

/* ------------------------------------------------------------- dropout -- */

typedef struct {
    uint64_t seed;
    const float *x;
    float *y;
    uint8_t *mask;
    const float *dy;
    float *dx;
    uint32_t thr;
    float scale;
} drop_ctx;

/* P(word >= thr) = 1 - thr / 2^32: thr = round(p 2^32), at most 2^32 - 1. */
static uint32_t keep_threshold(double p)
{
    double t = floor(p * 4294967296.0 + 0.5);
    if (!(t > 0.0))
        return 0;
    return t >= 4294967295.0 ? 0xFFFFFFFFu : (uint32_t)t;
}

FNN_INLINE int dropout_body(void *vc, ptrdiff_t lo_, ptrdiff_t hi_, int part_)
{
    const size_t i0 = (size_t)lo_, i1 = (size_t)hi_;
    (void)part_;
    drop_ctx *c = vc;
    const uint32_t thr = c->thr;
    const float scale = c->scale;
    uint32_t w[TILE + 4];
    for (size_t i = i0; i < i1; i += TILE) {
        size_t n = i1 - i < TILE ? i1 - i : TILE;
        int at = tile_words(c->seed, i, n, w);   /* i0 is tile-aligned: at == 0 */
        const uint32_t *src = w + at;
        const float *x = c->x + i;
        float *y = c->y + i;
        uint8_t *m = c->mask + i;
        for (size_t k = 0; k < n; k++) {
            int keep = src[k] >= thr;
            m[k] = (uint8_t)keep;
            y[k] = x[k] * (keep ? scale : 0.0f);   /* inf, NaN stay NaN */
        }
    }
    return 0;
}

FNN_RANGE_CLONES(dropout)

void fnn_dropout_forward(uint64_t seed, const float *x, float *y,
                         uint8_t *mask, size_t n, double p)
{
    drop_ctx c = {seed, x, y, mask, NULL, NULL, keep_threshold(p),
                  (float)(1.0 / (1.0 - p))};
    run_parallel(n, 1.0, FNN_ISA_PICK(dropout), &c);
}

FNN_INLINE int dropout_back_body(void *vc, ptrdiff_t lo_, ptrdiff_t hi_, int part_)
{
    const size_t i0 = (size_t)lo_, i1 = (size_t)hi_;
    (void)part_;
    drop_ctx *c = vc;
    const float scale = c->scale;
    const uint8_t *m = c->mask;
    const float *dy = c->dy;
    float *dx = c->dx;
    for (size_t k = i0; k < i1; k++)
        dx[k] = dy[k] * (m[k] ? scale : 0.0f);
    return 0;
}

FNN_RANGE_CLONES(dropout_back)

void fnn_dropout_backward(const float *dy, const uint8_t *mask, float *dx,
                          size_t n, double p)
{
    drop_ctx c = {0, NULL, NULL, (uint8_t *)mask, dy, dx, 0,
                  (float)(1.0 / (1.0 - p))};
    run_parallel(n, 0.25, FNN_ISA_PICK(dropout_back), &c);
}

/* -------------------------------------------------------- Gaussian noise -- */

typedef struct {
    uint64_t seed;
    const float *x;
    float *y;
    float std;
} noise_ctx;

FNN_INLINE int noise_body(void *vc, ptrdiff_t lo_, ptrdiff_t hi_, int part_)
{
    const size_t i0 = (size_t)lo_, i1 = (size_t)hi_;
    (void)part_;
    noise_ctx *c = vc;
    const float std = c->std;
    uint32_t w[TILE + 4];
    float z[TILE + 4];
    for (size_t i = i0; i < i1; i += TILE) {
        size_t n = i1 - i < TILE ? i1 - i : TILE;
        tile_words(c->seed, i, n, w);            /* i is tile-aligned */
        box_muller(w, ((int)n + 1) / 2, z);
        const float *x = c->x + i;
        float *y = c->y + i;
        for (size_t k = 0; k < n; k++)
            y[k] = x[k] + std * z[k];
    }
    return 0;
}

FNN_RANGE_CLONES(noise)

void fnn_gaussian_noise_forward(uint64_t seed, const float *x, float *y,
                                size_t n, float std)
{
    noise_ctx c = {seed, x, y, std};
    run_parallel(n, 4.0, FNN_ISA_PICK(noise), &c);
}
