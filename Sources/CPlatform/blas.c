/* The BLAS binding and, for OpenBLAS, its kernel choice (see tk_platform.h). */
#include "tk_platform.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__APPLE__)
#define ACCELERATE_NEW_LAPACK 1
#include <Accelerate/Accelerate.h>
#define TK_ACCELERATE 1
#else
#include <cblas.h>
/* OpenBLAS extensions, declared here so the build does not depend on which header declares them.
 * The gotoblas_dynamic_* pair exists in DYNAMIC_ARCH builds only: weak, and checked before use. */
char *openblas_get_corename(void);
char *openblas_get_config(void);
void openblas_set_num_threads(int);
int openblas_get_num_threads(void);
extern void gotoblas_dynamic_init(void) __attribute__((weak));
extern void gotoblas_dynamic_quit(void) __attribute__((weak));
extern int blas_thread_shutdown_(void) __attribute__((weak));
#endif

void tk_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda, const float *b,
              int ldb, float beta, float *c, int ldc) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k,
                alpha, a, lda, b, ldb, beta, c, ldc);
}

void tk_sgemv(int trans, int m, int n, float alpha, const float *a, int lda, const float *x, int incx, float beta,
              float *y, int incy) {
    cblas_sgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, m, n, alpha, a, lda, x, incx, beta, y, incy);
}

/* MARK: - Kernel selection */

static struct {
    int source;
    char candidates[128];
    char tried[128];
    double error;
} sel;

static pthread_mutex_t sel_lock = PTHREAD_MUTEX_INITIALIZER;
static int sel_done;

/* Relative error (max |C - C64| / max |C64|) of one product per transpose pair on odd shapes. */
static double check_product(void) {
    enum { M = 37, N = 29, K = 71 };
    static float a[M * K], b[K * N], c[M * N];
    unsigned long long s = 0x5EEDull;
    for (int i = 0; i < M * K; i++) { s = s * 6364136223846793005ull + 1442695040888963407ull; a[i] = (float)((s >> 40) % 2001) / 1000.0f - 1.0f; }
    for (int i = 0; i < K * N; i++) { s = s * 6364136223846793005ull + 1442695040888963407ull; b[i] = (float)((s >> 40) % 2001) / 1000.0f - 1.0f; }
    double worst = 0;
    for (int t = 0; t < 4; t++) {
        int ta = t & 1, tb = t >> 1;
        for (int i = 0; i < M * N; i++) c[i] = NAN;
        tk_sgemm(ta, tb, M, N, K, 1.0f, a, ta ? M : K, b, tb ? K : N, 0.0f, c, N);
        double max_ref = 0, max_diff = 0;
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double r = 0;
                for (int p = 0; p < K; p++) {
                    double av = ta ? a[p * M + i] : a[i * K + p];
                    double bv = tb ? b[j * K + p] : b[p * N + j];
                    r += av * bv;
                }
                double diff = fabs(r - (double)c[i * N + j]);
                if (!(diff == diff)) diff = INFINITY;
                if (fabs(r) > max_ref) max_ref = fabs(r);
                if (diff > max_diff) max_diff = diff;
            }
        double e = max_diff / (max_ref > 1e-30 ? max_ref : 1e-30);
        if (e > worst) worst = e;
    }
    return worst;
}

static void append(char *list, size_t cap, const char *name) {
    size_t n = strlen(list);
    snprintf(list + n, cap - n, "%s%s", n ? "," : "", name);
}

int tk_blas_candidates_for(const tk_cpu_info *f, int level, const char **out) {
    int n = 0;
    if (strcmp(f->arch, "x86_64") != 0) return 0;
    if (level == TK_SIMD_AVX512 && f->avx512bf16) out[n++] = "Cooperlake";
    if (level == TK_SIMD_AVX512) out[n++] = "SkylakeX";
    if (level == TK_SIMD_AVX512 || level == TK_SIMD_AVX2) out[n++] = "Haswell";
    if (f->avx) out[n++] = "SandyBridge";
    return n;
}

#if !defined(TK_ACCELERATE)

/* Switches OpenBLAS to `name` (NULL: its own detection) with the environment as it was. */
static void switch_kernel(const char *name) {
    const char *user = getenv("OPENBLAS_CORETYPE");
    char saved[64] = {0};
    if (user) snprintf(saved, sizeof saved, "%s", user);
    if (name) setenv("OPENBLAS_CORETYPE", name, 1);
    else unsetenv("OPENBLAS_CORETYPE");
    gotoblas_dynamic_quit();
    gotoblas_dynamic_init();
    if (saved[0]) setenv("OPENBLAS_CORETYPE", saved, 1);
    else unsetenv("OPENBLAS_CORETYPE");
}
#endif

static void select_kernel(void) {
    sel.candidates[0] = sel.tried[0] = 0;
    sel.source = TK_BLAS_CHOSEN_BY_LIBRARY;
#if !defined(TK_ACCELERATE)
    /* The toolkit splits products over cores itself. OpenBLAS started its worker threads at load
     * time, and they spin (sched_yield) for ~0.1 s before sleeping: stop them. A later threaded
     * call (tk_blas_set_threads(n > 1)) starts them again. */
    openblas_set_num_threads(1);
    if (blas_thread_shutdown_) blas_thread_shutdown_();
    const char *list[4];
    int n = tk_blas_candidates_for(tk_cpu(), tk_simd_level(), list);
    for (int i = 0; i < n; i++) append(sel.candidates, sizeof sel.candidates, list[i]);
    const char *user = getenv("OPENBLAS_CORETYPE");
    if (user && *user) {
        sel.source = TK_BLAS_CHOSEN_BY_USER;
    } else if (gotoblas_dynamic_init && gotoblas_dynamic_quit) {
        for (int i = 0; i < n; i++) {
            switch_kernel(list[i]);
            append(sel.tried, sizeof sel.tried, list[i]);
            sel.error = check_product();
            if (sel.error < 1e-5) {
                sel.source = TK_BLAS_CHOSEN_BY_TOOLKIT;
                return;
            }
        }
        if (n > 0) { /* every candidate failed its check: OpenBLAS's own choice */
            switch_kernel(NULL);
            append(sel.tried, sizeof sel.tried, "library");
        }
    }
#endif
    sel.error = check_product();
}

void tk_blas_init(void) {
    if (__atomic_load_n(&sel_done, __ATOMIC_ACQUIRE)) return;
    pthread_mutex_lock(&sel_lock);
    if (!sel_done) {
        select_kernel();
        __atomic_store_n(&sel_done, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&sel_lock);
}

/* After the library's own constructor (a shared library initialises before the code that links
 * it) and after the SIMD level (priority 101). */
__attribute__((constructor(102))) static void blas_startup(void) { tk_blas_init(); }

const char *tk_blas_library(void) {
#if defined(TK_ACCELERATE)
    return "Accelerate";
#else
    return "OpenBLAS";
#endif
}

const char *tk_blas_kernel(void) {
    tk_blas_init();
#if defined(TK_ACCELERATE)
    return "Accelerate";
#else
    const char *s = openblas_get_corename();
    return s ? s : "unknown";
#endif
}

const char *tk_blas_config(void) {
#if defined(TK_ACCELERATE)
    return "Accelerate (vecLib)";
#else
    const char *s = openblas_get_config();
    return s ? s : "unknown";
#endif
}

int tk_blas_kernel_source(void) { tk_blas_init(); return sel.source; }
const char *tk_blas_candidates(void) { tk_blas_init(); return sel.candidates; }
const char *tk_blas_tried(void) { tk_blas_init(); return sel.tried; }
double tk_blas_startup_error(void) { tk_blas_init(); return sel.error; }

void tk_blas_set_threads(int n) {
#if !defined(TK_ACCELERATE)
    openblas_set_num_threads(n < 1 ? 1 : n);
#else
    (void)n;
#endif
}

int tk_blas_threads(void) {
#if !defined(TK_ACCELERATE)
    return openblas_get_num_threads();
#else
    return 1;
#endif
}
