/* The platform seam: everything that depends on the CPU, the operating system or the BLAS library
 * lives behind this header (CPU features, the SIMD level the kernels dispatch on, the BLAS binding
 * and its kernel choice, thread and memory policy). Nothing outside this target contains inline
 * assembly, cpuid, an OpenBLAS-only symbol or a Linux-only constant. */
#ifndef TK_PLATFORM_H
#define TK_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

/* MARK: CPU */

typedef struct {
    char arch[16];   /* "x86_64", "aarch64", or "other" */
    char vendor[16];
    char model[64];
    /* x86-64 (each also requires the OS to save the register state) */
    int sse42, pclmul, avx, avx2, fma, bmi1, bmi2, f16c, lzcnt, movbe;
    int avx512f, avx512bw, avx512dq, avx512vl, avx512cd, avx512bf16, avx512vnni, amx_tile, amx_bf16;
    /* aarch64 */
    int neon, asimddp, sve, arm_bf16, arm_crc32;
} tk_cpu_info;

/* The running CPU's features (read once). */
const tk_cpu_info *tk_cpu(void);

/* MARK: SIMD level
 * The C kernels are compiled once per level and dispatch on tk_simd_level() at each call.
 * x86-64: portable < avx2 (x86-64-v3: AVX2, FMA, BMI1/2, F16C, LZCNT, MOVBE) < avx512 (x86-64-v4).
 * aarch64: portable < neon. TOOLKIT_SIMD=portable|avx2|avx512|neon lowers the level (tests run the
 * numerical suites once per level the machine has); a level the CPU lacks is refused. */
enum { TK_SIMD_PORTABLE = 0, TK_SIMD_AVX2 = 1, TK_SIMD_AVX512 = 2, TK_SIMD_NEON = 3 };

/* The level in effect (a relaxed load of a value fixed at start-up or by tk_simd_set). */
extern int tk_simd_current;
static inline int tk_simd_level(void) { return __atomic_load_n(&tk_simd_current, __ATOMIC_RELAXED); }
/* The best level this CPU supports. */
int tk_simd_best(void);
/* 1 when this CPU can run `level`. */
int tk_simd_supported(int level);
/* Forces a supported level for the C kernels (single-threaded C tests; the BLAS kernel chosen at
 * start-up stays: processes pick a level with TOOLKIT_SIMD). Returns 0, or -1 (unchanged). */
int tk_simd_set(int level);
/* "portable", "avx2", "avx512", "neon"; NULL for an unknown level. */
const char *tk_simd_name(int level);
/* The level for a name, or -1. */
int tk_simd_parse(const char *name);
/* Why TOOLKIT_SIMD was not applied (unknown name, or a level the CPU lacks), or NULL. */
const char *tk_simd_env_error(void);

/* MARK: BLAS binding (row-major; OpenBLAS on Linux, Accelerate on Apple platforms) */

void tk_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda, const float *b,
              int ldb, float beta, float *c, int ldc);
/* y = alpha * op(A) x + beta * y with A [m, n] row-major. */
void tk_sgemv(int trans, int m, int n, float alpha, const float *a, int lda, const float *x, int incx, float beta,
              float *y, int incy);

/* Kernel choice. OpenBLAS (DYNAMIC_ARCH) picks its kernel in a load-time constructor and Debian's
 * 0.3.21 mis-detects recent CPUs (a generic kernel, ~30 GFLOP/s instead of ~200). A constructor in
 * this target, which runs after the library's, re-selects the best kernel for the CPU features and
 * the SIMD level, checks a product against a float64 reference and falls back to the next kernel
 * when it is wrong. Every process that links the toolkit gets this: the CLI, the tests and library
 * clients. An OPENBLAS_CORETYPE set by the user is respected. */
enum { TK_BLAS_CHOSEN_BY_LIBRARY = 0, TK_BLAS_CHOSEN_BY_USER = 1, TK_BLAS_CHOSEN_BY_TOOLKIT = 2 };
void tk_blas_init(void);             /* idempotent; every entry point calls it */
const char *tk_blas_library(void);   /* "OpenBLAS", "Accelerate" */
const char *tk_blas_kernel(void);    /* the kernel in use ("Haswell", ...) */
const char *tk_blas_config(void);    /* the library's build configuration */
int tk_blas_kernel_source(void);     /* TK_BLAS_CHOSEN_BY_* */
const char *tk_blas_candidates(void); /* comma-separated, best first, for this CPU and SIMD level */
/* OpenBLAS kernels for features f at SIMD level `level`, best first (at most 4 names): an AVX-512
 * level takes SkylakeX (Cooperlake with AVX512-BF16), AVX2 Haswell, and every AVX CPU SandyBridge
 * last. Returns the count. */
int tk_blas_candidates_for(const tk_cpu_info *f, int level, const char **out);
const char *tk_blas_tried(void);      /* kernels the start-up check tried, comma-separated */
double tk_blas_startup_error(void);   /* relative error of the start-up check (kernel in use) */
/* The library's own threads: the toolkit keeps it at 1 and splits products over cores itself. */
void tk_blas_set_threads(int n);
int tk_blas_threads(void);

/* MARK: threads, memory, processes */

/* Cores this process may run on (its affinity mask where the OS has one). */
int tk_cpu_count(void);
/* Bytes a new allocation can use without swapping (Linux MemAvailable, else physical memory), 0 if unknown. */
unsigned long long tk_available_memory(void);
/* Asks for transparent huge pages over [p, p + bytes) where the OS has them (a hint). */
void tk_advise_huge_pages(void *p, size_t bytes);
/* Pause instruction for spin loops. */
static inline void tk_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}
/* A child process that keeps one core busy (integer work, no memory traffic) until tk_busy_stop or
 * the parent's exit; for benchmarks' --contend. Returns its pid, or -1. */
int tk_busy_start(void);
void tk_busy_stop(int pid);

#endif
