/* tools/vs_openblas.c -- fnn_sgemm against numpy's own OpenBLAS from C,
 * without Python's call costs (which at a 5 us product are a tenth of it).
 * Built and run by tools/vs_openblas.sh; see there for the arguments.
 *
 * Each round times a block of calls of OpenBLAS and of fastnn, alternating
 * which goes first, and the report is the median over rounds of the paired
 * ratio OpenBLAS time / fastnn time (above 1: fastnn faster) with its
 * quartiles, and each side's median GFLOP/s. fastnn's result is checked
 * against OpenBLAS's first (max abs difference relative to max |C|). On
 * more than one thread each block starts after a pause: OpenBLAS's workers
 * spin for ~0.1 s after its calls (fastnn's for 1 ms) and would otherwise
 * share the cores with the other library's block (as the benchmark's
 * settle() avoids). */
#define _POSIX_C_SOURCE 199309L  /* clock_gettime, nanosleep */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fastnn.h"

/* numpy's OpenBLAS, built with a 64-bit interface and symbol suffix */
void scipy_cblas_sgemm64_(int order, int ta, int tb, long M, long N, long K, float alpha,
                          const float *A, long lda, const float *B, long ldb, float beta,
                          float *C, long ldc);
void scipy_openblas_set_num_threads64_(int n);

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static void pause_s(double s)
{
    struct timespec t = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
    nanosleep(&t, NULL);
}

/* fastnn's ISA paths by their FNN_ISA_* number, named as in fastnn.set_isa */
static const char *const isa_names[] = {"ref", "avx2", "avx512"};

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 5 || strlen(argv[1]) != 2 || strspn(argv[1], "NT") != 2) {
        fprintf(stderr, "usage: %s NN|NT|TN|TT M N K [threads] [rounds]\n", argv[0]);
        return 2;
    }
    const int ta = argv[1][0] == 'T', tb = argv[1][1] == 'T';
    const long M = atol(argv[2]), N = atol(argv[3]), K = atol(argv[4]);
    const int threads = argc > 5 ? atoi(argv[5]) : 1, rounds = argc > 6 ? atoi(argv[6]) : 31;
    if (M < 1 || N < 1 || K < 1 || threads < 1 || rounds < 1 || rounds > 1001) {
        fprintf(stderr, "M, N, K, threads >= 1 and 1 <= rounds <= 1001\n");
        return 2;
    }
    /* FASTNN_ISA picks fastnn's path as it does for the Python package;
     * OPENBLAS_CORETYPE (e.g. Haswell) picks OpenBLAS's kernels */
    const char *isa = getenv("FASTNN_ISA");
    if (isa) {
        int i = FNN_ISA_AVX512;
        while (i >= 0 && strcmp(isa, isa_names[i]))
            i--;
        if (i < 0 || fnn_set_isa(i) != 0) {
            fprintf(stderr, "FASTNN_ISA=%s: not a path this CPU has (ref, avx2, avx512)\n", isa);
            return 2;
        }
    }
    fnn_set_num_threads(threads);
    scipy_openblas_set_num_threads64_(threads);
    const long lda = ta ? M : K, ldb = tb ? K : N;
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
    float *C = malloc(sizeof(float) * M * N), *R = malloc(sizeof(float) * M * N);
    double *to = malloc(sizeof(double) * rounds), *tf = malloc(sizeof(double) * rounds);
    double *ratio = malloc(sizeof(double) * rounds);
    if (!A || !B || !C || !R || !to || !tf || !ratio)
        return 1;
    srand(1);
    for (long i = 0; i < M * K; i++)
        A[i] = (float)rand() / RAND_MAX - 0.5f;
    for (long i = 0; i < K * N; i++)
        B[i] = (float)rand() / RAND_MAX - 0.5f;
#define OB() scipy_cblas_sgemm64_(101, ta ? 112 : 111, tb ? 112 : 111, M, N, K, 1.0f, A, lda, \
                                  B, ldb, 0.0f, R, N)
#define FN() fnn_sgemm(ta, tb, (int)M, (int)N, (int)K, 1.0f, A, lda, B, ldb, 0.0f, C, N, \
                       NULL, FNN_BIAS_NONE, 0)
    OB();
    FN();
    double err = 0.0, mag = 0.0;
    for (long i = 0; i < M * N; i++) {
        err = fmax(err, fabs((double)C[i] - R[i]));
        mag = fmax(mag, fabs((double)R[i]));
    }
    const double flop = 2.0 * M * N * K;
    int inner = (int)(2e-3 / (flop / 80e9));        /* ~2 ms a block */
    inner = inner < 10 ? 10 : inner;
    for (int r = 0; r < rounds; r++) {
        for (int q = 0; q < 2; q++) {
            const int fastnn_turn = (q == 0) == (r % 2 == 0);
            if (threads > 1)
                pause_s(fastnn_turn ? 0.15 : 0.005);
            for (int i = 0; i < inner / 4; i++)     /* warm the caches for this side */
                if (fastnn_turn) FN(); else OB();
            double t0 = now();
            for (int i = 0; i < inner; i++)
                if (fastnn_turn) FN(); else OB();
            double t = (now() - t0) / inner;
            if (fastnn_turn) tf[r] = t; else to[r] = t;
        }
        ratio[r] = to[r] / tf[r];
    }
    qsort(to, rounds, sizeof(double), cmp);
    qsort(tf, rounds, sizeof(double), cmp);
    qsort(ratio, rounds, sizeof(double), cmp);
    const char *core = getenv("OPENBLAS_CORETYPE");
    printf("%s %ldx%ldx%ld %d thr: openblas%s%s %.1f GFLOP/s, fastnn[%s] %.1f, ratio %.3f"
           " [%.3f %.3f] (max |diff| %.1e of max |C| %.1e)\n", argv[1], M, N, K, threads,
           core ? " " : "", core ? core : "", flop / to[rounds / 2] / 1e9,
           isa_names[fnn_get_isa()],
           flop / tf[rounds / 2] / 1e9, ratio[rounds / 2],
           ratio[rounds / 4], ratio[3 * rounds / 4], err, mag);
    return 0;
}
