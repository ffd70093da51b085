/* gemm_check.c -- a C-only check of fnn_sgemm against its naive twin, for
 * builds where Python is not at hand (e.g. an aarch64 cross build run under
 * qemu: tools/aarch64_check.sh). Random shapes across block edges, all four
 * transposes, alpha/beta, bias and ReLU, 1 and 2 threads (bitwise equal),
 * and B packed beforehand (bitwise equal but where a dot kernel runs);
 * once with the default blocking and once with tiny blocks (every KC/MC/NC
 * loop runs many times).
 * Exit status 0 on success. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../csrc/gemm_kernels.h"

static unsigned long long state = 88172645463325252ull;
static float frand(void)
{
    state ^= state << 13; state ^= state >> 7; state ^= state << 17;
    return (float)((state >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

int main(void)
{
    const int dims[] = {1, 2, 3, 7, 8, 9, 17, 31, 48, 49, 97, 130, 257, 300};
    const int nd = sizeof dims / sizeof dims[0];
    int failures = 0, cases = 0;
    printf("isa %s, kernel %s\n", fnn_isa_name(fnn_get_isa()), fnn_gemm_kernel_name());
    /* then shapes whose 2-thread column split is cut at vector width (gemm.c's
     * col_unit; 12-wide NEON panels: 136 = 68 + 68, 40 = 20 + 20) */
    const int fixed[][3] = {{16, 136, 1000}, {8, 40, 7000}, {16, 136, 1001}, {9, 40, 7001}};
    const int nf = sizeof fixed / sizeof fixed[0];
    for (int c = 0; c < 240 + 4 * nf; c++) {
        if (c == 120)
            fnn_gemm_set_blocking(16, 20, 30);
        if (c == 240)
            fnn_gemm_set_blocking(0, 0, 0);
        int M = dims[(c * 7) % nd], N = dims[(c * 5 + 3) % nd], K = dims[(c * 3 + 1) % nd];
        if (c >= 240) {             /* each fixed shape in the four transpose cases */
            M = fixed[(c - 240) / 4][0], N = fixed[(c - 240) / 4][1], K = fixed[(c - 240) / 4][2];
        }
        int ta = c & 1, tb = (c >> 1) & 1, relu = (c >> 2) & 1, mode = c % 3;
        float alpha = (c % 5) ? 1.0f : 0.5f, beta = (c % 4) ? 0.0f : 1.5f;
        float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
        float *C0 = malloc(sizeof(float) * M * N), *C1 = malloc(sizeof(float) * M * N);
        float *C2 = malloc(sizeof(float) * M * N), *R = malloc(sizeof(float) * M * N);
        float *bias = malloc(sizeof(float) * (M > N ? M : N));
        for (int i = 0; i < M * K; i++) A[i] = frand();
        for (int i = 0; i < K * N; i++) B[i] = frand();
        for (int i = 0; i < M * N; i++) C0[i] = frand();
        for (int i = 0; i < (M > N ? M : N); i++) bias[i] = frand();
        memcpy(C1, C0, sizeof(float) * M * N);
        memcpy(C2, C0, sizeof(float) * M * N);
        memcpy(R, C0, sizeof(float) * M * N);
        ptrdiff_t lda = ta ? M : K, ldb = tb ? K : N;
        fnn_set_num_threads(1);
        fnn_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C1, N, bias, mode, relu);
        fnn_set_num_threads(2);
        fnn_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C2, N, bias, mode, relu);
        fnn_sgemm_naive(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, R, N, bias, mode, relu);
        /* B packed beforehand: the general kernel, whose bits every path but
         * the dot kernels (untransposed A with N <= 16, or with B^T M <= 4, or
         * M <= 32 from K = 256)
         * must give -- the small-N kernels along M included */
        float *P = malloc(sizeof(float) * (fnn_sgemm_packed_floats(K, N) + 1));
        float *C3 = malloc(sizeof(float) * M * N);
        fnn_packed_b pb;
        memcpy(C3, C0, sizeof(float) * M * N);
        fnn_sgemm_pack_b(tb, K, N, B, ldb, P, &pb);
        fnn_sgemm_pb(ta, M, alpha, A, lda, &pb, beta, C3, N, bias, mode, relu);
        int dot = !ta && (N <= 16 || (tb && (M <= 4 || (M <= 32 && K >= 256))));
        for (int i = 0; i < M * N; i++) {
            double tol = 1e-5 * K + 1e-5;
            if (fabs(C1[i] - R[i]) > tol * (1 + fabs(R[i])) || memcmp(&C1[i], &C2[i], 4)
                || (!dot && memcmp(&C1[i], &C3[i], 4))) {
                printf("FAIL M=%d N=%d K=%d ta=%d tb=%d at %d: %.9g vs %.9g (2 threads %.9g, "
                       "packed B %.9g)\n", M, N, K, ta, tb, i, C1[i], R[i], C2[i], C3[i]);
                failures++;
                break;
            }
        }
        cases++;
        free(A); free(B); free(C0); free(C1); free(C2); free(C3); free(P); free(R); free(bias);
    }
    printf("%d passed, %d failed\n", cases - failures, failures);
    return failures != 0;
}
