/* Baseline for `toolkit bench gemm`: the same cblas_sgemm call from C, timed the same way
 * (one warm-up, then the median of N timed samples of at least 50 ms of C = A·B).
 * Build: cc -O2 scripts/gemm-baseline.c $(pkg-config --cflags --libs openblas) -o /tmp/gemm-baseline
 * Run:   OPENBLAS_CORETYPE=SkylakeX /tmp/gemm-baseline M N K REPEATS */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int m = argc > 1 ? atoi(argv[1]) : 2048, n = argc > 2 ? atoi(argv[2]) : 1536;
    int k = argc > 3 ? atoi(argv[3]) : 384, reps = argc > 4 ? atoi(argv[4]) : 9;
    float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n), *c = malloc(sizeof(float) * m * n);
    srand(1);
    for (long i = 0; i < (long)m * k; i++) a[i] = rand() / (float)RAND_MAX - 0.5f;
    for (long i = 0; i < (long)k * n; i++) b[i] = rand() / (float)RAND_MAX - 0.5f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, a, k, b, n, 0, c, n);
    /* Calibrate: each timed sample loops the product for at least 50 ms (as toolkit does). */
    double s0 = now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, a, k, b, n, 0, c, n);
    double single = now() - s0;
    int inner = single > 0 ? (int)(0.05 / single) + 1 : 1;
    double *t = malloc(sizeof(double) * reps);
    for (int r = 0; r < reps; r++) {
        double s = now();
        for (int i = 0; i < inner; i++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, a, k, b, n, 0, c, n);
        t[r] = (now() - s) / inner;
    }
    qsort(t, reps, sizeof(double), cmp);
    double med = reps % 2 ? t[reps / 2] : (t[reps / 2 - 1] + t[reps / 2]) / 2;
    printf("{\"gflops\": %.3f, \"kernel\": \"%s\", \"threads\": %d}\n", 2.0 * m * n * k / med / 1e9,
           openblas_get_corename(), openblas_get_num_threads());
    return 0;
}
