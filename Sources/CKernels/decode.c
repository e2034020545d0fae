/* Single-token (batch 1) decoding kernels: matrix-vector products over f32, bf16 or int8 weights,
 * a small persistent thread pool that splits them by rows, and the per-row pieces of a decoder
 * step (norms, rotary embedding, attention of one query over a KV cache).
 *
 * Decoding one token reads every weight once, so it is bound by memory bandwidth, not FLOPs: the
 * narrower formats trade precision for bytes (bf16: half, int8 with one scale per row: a quarter).
 * The loops are written with independent per-lane accumulators so that clang vectorises them
 * without reassociating; AVX-512 and AVX2 + FMA versions are written with intrinsics and chosen by
 * the SIMD level in effect (tk_simd_level). */
#include "ckernels.h"
#include "tk_math.h" /* and tk_platform.h */

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* MARK: - Weight conversion */

void tk_to_bf16(const float *w, size_t n, uint16_t *out) {
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &w[i], 4);
        if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu)) {
            out[i] = (uint16_t)((bits >> 16) | 0x40u); /* quiet NaN */
        } else {
            out[i] = (uint16_t)((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16); /* round to nearest even */
        }
    }
}

int tk_quantize_q8(const float *w, int rows, int cols, int8_t *q, float *scales) {
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        if (!isfinite(w[i])) return -1;
    for (int r = 0; r < rows; r++) {
        const float *wr = w + (size_t)r * cols;
        float m = 0.0f;
        for (int c = 0; c < cols; c++) m = fmaxf(m, fabsf(wr[c]));
        float s = m / 127.0f;
        float inv = s > 0.0f ? 1.0f / s : 0.0f;
        scales[r] = s;
        for (int c = 0; c < cols; c++) {
            float v = nearbyintf(wr[c] * inv);
            v = v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v);
            q[(size_t)r * cols + c] = (int8_t)v;
        }
    }
    return 0;
}

/* MARK: - Matrix-vector products */

static inline float load_weight(const tk_matrix *m, size_t i) {
    switch (m->format) {
    case TK_W_BF16: {
        uint32_t bits = (uint32_t)((const uint16_t *)m->data)[i] << 16;
        float f;
        memcpy(&f, &bits, 4);
        return f;
    }
    case TK_W_Q8: return (float)((const int8_t *)m->data)[i];
    default: return ((const float *)m->data)[i];
    }
}

/* Portable version: eight independent partial sums per row. */
static void gemv_rows_generic(const tk_matrix *m, const float *x, float *y, int row_begin, int row_end, int accumulate) {
    const int n = m->cols;
    for (int r = row_begin; r < row_end; r++) {
        float acc[8] = {0};
        size_t base = (size_t)r * n;
        int c = 0;
        for (; c + 8 <= n; c += 8)
            for (int j = 0; j < 8; j++) acc[j] += load_weight(m, base + c + j) * x[c + j];
        float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        for (; c < n; c++) s += load_weight(m, base + c) * x[c];
        if (m->format == TK_W_Q8) s *= m->scales[r];
        if (m->bias) s += m->bias[r];
        y[r] = accumulate ? y[r] + s : s;
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

static inline const void *row_pointer(const tk_matrix *m, int r) {
    size_t off = (size_t)r * m->cols;
    switch (m->format) {
    case TK_W_BF16: return (const uint16_t *)m->data + off;
    case TK_W_Q8: return (const int8_t *)m->data + off;
    default: return (const float *)m->data + off;
    }
}

static inline float finish_row(const tk_matrix *m, int r, float s, float *y, int accumulate) {
    if (m->format == TK_W_Q8) s *= m->scales[r];
    if (m->bias) s += m->bias[r];
    return accumulate ? y[r] + s : s;
}

#define TK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl"), always_inline)) static inline

/* 16 weights of row `w` from column c as floats (mask: which of the 16 exist). */
TK_AVX512 __m512 load16(int format, const void *w, int c, __mmask16 k) {
    switch (format) {
    case TK_W_BF16: {
        __m256i h = _mm256_maskz_loadu_epi16(k, (const uint16_t *)w + c);
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    case TK_W_Q8: return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(k, (const int8_t *)w + c)));
    default: return _mm512_maskz_loadu_ps(k, (const float *)w + c);
    }
}

/* R rows (1..4) at once: the x vector is loaded once per 16 columns for all of them, and two
 * column steps per iteration keep 2R independent FMA chains in flight. */
TK_AVX512 void gemv_block(const tk_matrix *m, const float *x, float *y, int r0, int R, int accumulate) {
    const int n = m->cols, f = m->format;
    const void *w[4];
    for (int i = 0; i < R; i++) w[i] = row_pointer(m, r0 + i);
    __m512 a[4], b[4];
    for (int i = 0; i < 4; i++) a[i] = b[i] = _mm512_setzero_ps();
    int c = 0;
    for (; c + 32 <= n; c += 32) {
        __m512 x0 = _mm512_loadu_ps(x + c), x1 = _mm512_loadu_ps(x + c + 16);
        for (int i = 0; i < R; i++) {
            a[i] = _mm512_fmadd_ps(load16(f, w[i], c, 0xffff), x0, a[i]);
            b[i] = _mm512_fmadd_ps(load16(f, w[i], c + 16, 0xffff), x1, b[i]);
        }
    }
    for (; c < n; c += 16) {
        int left = n - c;
        __mmask16 k = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
        __m512 x0 = _mm512_maskz_loadu_ps(k, x + c);
        for (int i = 0; i < R; i++) a[i] = _mm512_fmadd_ps(load16(f, w[i], c, k), x0, a[i]);
    }
    for (int i = 0; i < R; i++) y[r0 + i] = finish_row(m, r0 + i, _mm512_reduce_add_ps(_mm512_add_ps(a[i], b[i])), y, accumulate);
}

__attribute__((target("avx512f,avx512bw,avx512vl")))
static void gemv_rows_avx512(const tk_matrix *m, const float *x, float *y, int row_begin, int row_end, int accumulate) {
    int r = row_begin;
    for (; r + 4 <= row_end; r += 4) gemv_block(m, x, y, r, 4, accumulate);
    for (; r < row_end; r++) gemv_block(m, x, y, r, 1, accumulate);
}

__attribute__((target("avx512f,avx512bw,avx512vl"), always_inline))
static inline float dot_avx512(const float *a, const float *b, int n) {
    __m512 acc = _mm512_setzero_ps();
    for (int c = 0; c < n; c += 16) {
        int left = n - c;
        __mmask16 k = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, a + c), _mm512_maskz_loadu_ps(k, b + c), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

/* MARK: AVX2 + FMA (16 registers of 8 floats) */

#define TK_AVX2 __attribute__((target("avx2,fma,f16c"), always_inline)) static inline

TK_AVX2 float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 8 weights of row `w` from column c as floats. */
TK_AVX2 __m256 load8(int format, const void *w, int c) {
    switch (format) {
    case TK_W_BF16: {
        __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + c));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    case TK_W_Q8: return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)((const int8_t *)w + c))));
    default: return _mm256_loadu_ps((const float *)w + c);
    }
}

/* R rows (1..4) and 16 columns per step: 2R accumulators, two x registers and one weight vector
 * in flight, within the 16 ymm registers; the row tail (< 8 columns) is scalar. */
TK_AVX2 void gemv_block_avx2(const tk_matrix *m, const float *x, float *y, int r0, int R, int accumulate) {
    const int n = m->cols, f = m->format;
    const void *w[4];
    for (int i = 0; i < R; i++) w[i] = row_pointer(m, r0 + i);
    __m256 a[4], b[4];
    for (int i = 0; i < 4; i++) a[i] = b[i] = _mm256_setzero_ps();
    int c = 0;
    for (; c + 16 <= n; c += 16) {
        __m256 x0 = _mm256_loadu_ps(x + c), x1 = _mm256_loadu_ps(x + c + 8);
        for (int i = 0; i < R; i++) {
            a[i] = _mm256_fmadd_ps(load8(f, w[i], c), x0, a[i]);
            b[i] = _mm256_fmadd_ps(load8(f, w[i], c + 8), x1, b[i]);
        }
    }
    for (; c + 8 <= n; c += 8) {
        __m256 x0 = _mm256_loadu_ps(x + c);
        for (int i = 0; i < R; i++) a[i] = _mm256_fmadd_ps(load8(f, w[i], c), x0, a[i]);
    }
    for (int i = 0; i < R; i++) {
        float s = hsum8(_mm256_add_ps(a[i], b[i]));
        size_t base = (size_t)(r0 + i) * n;
        for (int t = c; t < n; t++) s += load_weight(m, base + t) * x[t];
        y[r0 + i] = finish_row(m, r0 + i, s, y, accumulate);
    }
}

__attribute__((target("avx2,fma,f16c")))
static void gemv_rows_avx2(const tk_matrix *m, const float *x, float *y, int row_begin, int row_end, int accumulate) {
    int r = row_begin;
    for (; r + 4 <= row_end; r += 4) gemv_block_avx2(m, x, y, r, 4, accumulate);
    for (; r < row_end; r++) gemv_block_avx2(m, x, y, r, 1, accumulate);
}

TK_AVX2 float dot_avx2(const float *a, const float *b, int n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int c = 0;
    for (; c + 16 <= n; c += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + c), _mm256_loadu_ps(b + c), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + c + 8), _mm256_loadu_ps(b + c + 8), a1);
    }
    for (; c + 8 <= n; c += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + c), _mm256_loadu_ps(b + c), a0);
    float s = hsum8(_mm256_add_ps(a0, a1));
    for (; c < n; c++) s += a[c] * b[c];
    return s;
}
#endif

void tk_gemv_rows(const tk_matrix *m, const float *x, float *y, int row_begin, int row_end, int accumulate) {
#if defined(__x86_64__)
    switch (tk_simd_level()) {
    case TK_SIMD_AVX512: gemv_rows_avx512(m, x, y, row_begin, row_end, accumulate); return;
    case TK_SIMD_AVX2: gemv_rows_avx2(m, x, y, row_begin, row_end, accumulate); return;
    default: break;
    }
#endif
    gemv_rows_generic(m, x, y, row_begin, row_end, accumulate);
}

/* MARK: - Thread pool
 *
 * The caller and (threads - 1) workers share the items of [0, n) in chunks claimed from one
 * atomic ticket, (generation << 32) | next item. Workers spin on the generation for a short while
 * after each job (decoding issues a job every few microseconds), then sleep on a condition
 * variable. The caller waits only for chunks that were claimed, never for a worker that has not
 * started: beside a busy process the scheduler may keep a worker off the CPU for milliseconds,
 * and the caller then simply runs every chunk itself. A claimed chunk whose worker was preempted
 * is waited for by blocking (not spinning), which gives that worker the caller's core. */

typedef struct {
    _Atomic(tk_range_fn) fn;
    _Atomic(void *) ctx;
    atomic_int n;
    atomic_int chunk;
} tk_job;

static struct {
    pthread_mutex_t lock;      /* guards sleeping workers and a sleeping caller */
    pthread_cond_t wake;       /* workers: a new generation */
    pthread_cond_t done_cv;    /* caller: the last claimed chunk finished */
    int threads;               /* including the caller */
    int started;               /* workers created */
    tk_job jobs[2];            /* generation g uses jobs[g & 1] (see claim) */
    _Atomic uint64_t ticket;
    atomic_uint generation;
    atomic_int sleepers;
    atomic_int done;           /* items finished in the current generation */
    atomic_int caller_waiting;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, 1, 0};

static pthread_mutex_t pool_call_lock = PTHREAD_MUTEX_INITIALIZER;

/* Contention fallback (guarded by pool_call_lock). When the caller ran every item of
 * TK_MISSES_TO_SERIAL parallel jobs in a row while the workers were awake, no worker was getting
 * the CPU in time (a busy neighbour, an oversubscribed machine): the next TK_SERIAL_JOBS jobs run
 * on the caller alone, which lets the workers sleep and give their core back, then a parallel job
 * probes again. (Doubling the serial stretch on repeated fallbacks measured worse: rare false
 * alarms on an idle machine then cost whole seconds of one-core decoding.) */
#define TK_MISSES_TO_SERIAL 3
#define TK_SERIAL_JOBS 512
static int pool_misses, pool_serial_left;

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Runs chunks of generation g until none is left. A worker may read the job of g after the caller
 * has moved on; its fields are then not used: a claim succeeds only while the ticket still holds
 * g with items left, and the slot jobs[g & 1] is rewritten only at generation g + 2, after every
 * item of g (and of g + 1) was claimed and finished. */
static int run_share(unsigned g) {
    const tk_job *job = &pool.jobs[g & 1];
    tk_range_fn fn = atomic_load_explicit(&job->fn, memory_order_relaxed);
    void *ctx = atomic_load_explicit(&job->ctx, memory_order_relaxed);
    int n = atomic_load_explicit(&job->n, memory_order_relaxed);
    int chunk = atomic_load_explicit(&job->chunk, memory_order_relaxed);
    uint64_t t = atomic_load_explicit(&pool.ticket, memory_order_acquire);
    int ran = 0;
    for (;;) {
        if ((unsigned)(t >> 32) != g) return ran;
        int begin = (int)(uint32_t)t;
        if (begin >= n) return ran;
        if (!atomic_compare_exchange_weak_explicit(&pool.ticket, &t, t + (uint64_t)chunk, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        int end = begin + chunk < n ? begin + chunk : n;
        fn(ctx, begin, end);
        ran += end - begin;
        if (atomic_fetch_add(&pool.done, end - begin) + (end - begin) == n && atomic_load(&pool.caller_waiting)) {
            pthread_mutex_lock(&pool.lock);
            pthread_cond_broadcast(&pool.done_cv);
            pthread_mutex_unlock(&pool.lock);
        }
        t = atomic_load_explicit(&pool.ticket, memory_order_acquire);
    }
}

#define TK_SPIN_SECONDS 2e-4

static void *pool_worker(void *arg) {
    (void)arg;
    unsigned seen = 0; /* workers are created before the first job is published */
    for (;;) {
        unsigned g;
        double start = now_seconds();
        int spins = 0;
        while ((g = atomic_load_explicit(&pool.generation, memory_order_acquire)) == seen) {
            tk_cpu_relax();
            /* After a short pure spin, yield between checks: on an idle core sched_yield returns at
             * once, beside a busy process it hands the core to whoever is runnable (the caller). */
            if (spins > 2048) sched_yield();
            if (++spins % 256 == 0 && now_seconds() - start > TK_SPIN_SECONDS) {
                pthread_mutex_lock(&pool.lock);
                atomic_fetch_add(&pool.sleepers, 1);
                while ((g = atomic_load(&pool.generation)) == seen) pthread_cond_wait(&pool.wake, &pool.lock);
                atomic_fetch_sub(&pool.sleepers, 1);
                pthread_mutex_unlock(&pool.lock);
                break;
            }
        }
        seen = g;
        run_share(g);
    }
    return NULL;
}

void tk_pool_configure(int threads) {
    pthread_mutex_lock(&pool_call_lock);
    if (!pool.started) pool.threads = threads < 1 ? 1 : (threads > 64 ? 64 : threads);
    pthread_mutex_unlock(&pool_call_lock);
}

/* Spin this long for the last claimed chunks before blocking. */
#define TK_WAIT_SPIN_SECONDS 5e-5

void tk_pool_for(int n, tk_range_fn fn, void *ctx) {
    if (n <= 0) return;
    pthread_mutex_lock(&pool_call_lock);
    if (pool.threads > 1 && !pool.started) {
        pool.started = 1;
        for (int i = 1; i < pool.threads; i++) {
            pthread_t t;
            pthread_attr_t attr;
            pthread_attr_init(&attr);
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
            if (pthread_create(&t, &attr, pool_worker, NULL) != 0) pool.threads = i;
            pthread_attr_destroy(&attr);
        }
    }
    if (pool.threads <= 1 || n == 1 || pool_serial_left > 0) {
        if (pool_serial_left > 0) pool_serial_left--;
        fn(ctx, 0, n);
        pthread_mutex_unlock(&pool_call_lock);
        return;
    }
    unsigned g = atomic_load(&pool.generation) + 1;
    tk_job *job = &pool.jobs[g & 1];
    int chunk = n / (pool.threads * 8);
    atomic_store_explicit(&job->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&job->ctx, ctx, memory_order_relaxed);
    atomic_store_explicit(&job->n, n, memory_order_relaxed);
    atomic_store_explicit(&job->chunk, chunk < 1 ? 1 : chunk, memory_order_relaxed);
    atomic_store(&pool.done, 0);
    atomic_store(&pool.ticket, (uint64_t)g << 32);
    atomic_store(&pool.generation, g); /* seq_cst: pairs with the sleepers check below */
    /* A sleeping worker needs tens of microseconds to wake: its absence is not a miss. */
    int asleep = atomic_load(&pool.sleepers) > 0;
    if (asleep) {
        pthread_mutex_lock(&pool.lock);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.lock);
    }
    int mine = run_share(g);
    if (mine == n && !asleep && ++pool_misses >= TK_MISSES_TO_SERIAL) {
        pool_misses = 0;
        pool_serial_left = TK_SERIAL_JOBS;
    } else if (mine < n) {
        pool_misses = 0;
    }
    if (atomic_load(&pool.done) < n) {
        double start = now_seconds();
        int spins = 0;
        while (atomic_load_explicit(&pool.done, memory_order_acquire) < n) {
            tk_cpu_relax();
            if (++spins % 64 == 0 && now_seconds() - start > TK_WAIT_SPIN_SECONDS) {
                /* Dekker with the finishing worker (both seq_cst): it sees caller_waiting, or we
                 * see its final count before sleeping. */
                pthread_mutex_lock(&pool.lock);
                atomic_store(&pool.caller_waiting, 1);
                while (atomic_load(&pool.done) < n) pthread_cond_wait(&pool.done_cv, &pool.lock);
                atomic_store(&pool.caller_waiting, 0);
                pthread_mutex_unlock(&pool.lock);
                break;
            }
        }
    }
    pthread_mutex_unlock(&pool_call_lock);
}

/* Several matrices against one or more vectors: rows of all of them in one parallel job. */
typedef struct {
    const tk_matrix *mats;
    int count;
    const float *x;
    float *const *ys;
    int vectors;
    int accumulate;
    int activation;
} gemv_job;

#define ROW_BLOCK 8

/* Rows [lo, hi) of matrix i for every vector. With several vectors the rows are taken ROW_BLOCK at
 * a time and applied to each vector in turn, so a block of weights is read from memory once and
 * from cache for the other vectors; each vector's rows are the single-vector kernel's, bit for bit. */
static void gemv_piece(const gemv_job *j, int i, int lo, int hi) {
    const tk_matrix *m = &j->mats[i];
    const size_t xs = (size_t)m->cols, ys = (size_t)m->rows;
    const int step = j->vectors == 1 ? hi - lo : ROW_BLOCK;
    for (int r = lo; r < hi; r += step) {
        int e = r + step < hi ? r + step : hi;
        for (int v = 0; v < j->vectors; v++) {
            float *y = j->ys[i] + v * ys;
            tk_gemv_rows(m, j->x + v * xs, y, r, e, j->accumulate);
            if (j->activation == TK_ACT_GELU_TANH) tk_gelu_tanh_forward(y, y, (size_t)r, (size_t)e);
        }
    }
}

static void gemv_range(void *p, int begin, int end) {
    const gemv_job *j = p;
    int first = begin * ROW_BLOCK, last = end * ROW_BLOCK, base = 0;
    for (int i = 0; i < j->count; i++) {
        int rows = j->mats[i].rows;
        int lo = first - base, hi = last - base;
        lo = lo < 0 ? 0 : lo;
        hi = hi > rows ? rows : hi;
        if (lo < hi) gemv_piece(j, i, lo, hi);
        base += rows;
    }
}

void tk_gemv_batch(const tk_matrix *mats, int count, const float *x, float *const *ys, int vectors, int accumulate,
                   int activation) {
    int rows = 0;
    for (int i = 0; i < count; i++) rows += mats[i].rows;
    gemv_job j = {mats, count, x, ys, vectors, accumulate, activation};
    tk_pool_for((rows + ROW_BLOCK - 1) / ROW_BLOCK, gemv_range, &j);
}

void tk_gemv_parallel(const tk_matrix *mats, int count, const float *x, float *const *ys, int accumulate, int activation) {
    tk_gemv_batch(mats, count, x, ys, 1, accumulate, activation);
}

/* MARK: - Row pieces of a decoder step */

void tk_rope_row(float *x, int heads, int d, const float *cos_row, const float *sin_row, int half, int interleaved) {
    for (int h = 0; h < heads; h++) {
        float *xs = x + (size_t)h * d;
        for (int i = 0; i < half; i++) {
            int ia = interleaved ? 2 * i : i, ib = interleaved ? 2 * i + 1 : i + half;
            float a = xs[ia], b = xs[ib], c = cos_row[i], s = sin_row[i];
            xs[ia] = a * c - b * s;
            xs[ib] = b * c + a * s;
        }
    }
}

typedef struct {
    const tk_decode_attention *p;
    const float *q;
    const float *k;
    const float *v;
    float *out;
    float *scratch;
} attention_job;

typedef float (*dot_fn)(const float *, const float *, int);

/* A scaled score after soft-capping (tk_attention's order: scale, softcap, then ALiBi). */
static inline float capped(const tk_decode_attention *p, float x) {
    return p->softcap > 0.0f ? p->softcap * tanhf(x / p->softcap) : x;
}

/* The running max with head h's sink logit, and the sum of exps with the sink's term. */
static inline float with_sink_max(const tk_decode_attention *p, int h, float m) {
    return p->sinks ? TK_MAX_NAN(p->sinks[h], m) : m;
}
static inline float with_sink_sum(const tk_decode_attention *p, int h, float m, float total) {
    return p->sinks ? total + expf(p->sinks[h] - m) : total;
}

static inline __attribute__((always_inline)) void attention_body(const attention_job *j, int begin, int end, dot_fn dotf) {
    const tk_decode_attention *p = j->p;
    const int d = p->D, group = p->H / p->KVH, row = p->KVH * d, pos = p->position;
    int lo = 0;
    if (p->window > 0 && pos - p->window + 1 > 0) lo = pos - p->window + 1;
    for (int h = begin; h < end; h++) {
        const float *q = j->q + (size_t)h * d;
        const float *k = j->k + (size_t)(h / group) * d, *v = j->v + (size_t)(h / group) * d;
        float *s = j->scratch + (size_t)h * (pos + 1);
        float slope = p->alibi ? p->alibi[h] : 0.0f, m = -INFINITY;
        for (int t = lo; t <= pos; t++) {
            float acc = capped(p, dotf(q, k + (size_t)t * row, d) * p->scale) - slope * (float)(pos - t);
            s[t] = acc;
            m = TK_MAX_NAN(acc, m);
        }
        m = with_sink_max(p, h, m);
        float total = with_sink_sum(p, h, m, tk_row_sum_exp(s + lo, m, pos - lo + 1, s + lo));
        float *o = j->out + (size_t)h * d;
        for (int i = 0; i < d; i++) o[i] = 0.0f;
        float inv = 1.0f / total;
        for (int t = lo; t <= pos; t++) {
            const float *vt = v + (size_t)t * row;
            float w = s[t] * inv;
            for (int i = 0; i < d; i++) o[i] += w * vt[i];
        }
    }
}

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bw,avx512vl")))
static void attention_heads_avx512(void *ctx, int begin, int end) { attention_body(ctx, begin, end, dot_avx512); }

/* head_dim = 16 * NV (64, 128): the query and the output stay in NV registers for the whole head
 * (the generic loop re-reads and re-writes the output row once per key). */
#define TK_ATTEND_HEADS(NV)                                                                                 \
    __attribute__((target("avx512f,avx512bw,avx512vl"))) static void attention_heads_d##NV(void *ctx, int begin, \
                                                                                          int end) {          \
        const attention_job *j = ctx;                                                                       \
        const tk_decode_attention *p = j->p;                                                                \
        const int d = 16 * NV, group = p->H / p->KVH, row = p->KVH * d, pos = p->position;                  \
        int lo = 0;                                                                                         \
        if (p->window > 0 && pos - p->window + 1 > 0) lo = pos - p->window + 1;                             \
        for (int h = begin; h < end; h++) {                                                                 \
            const float *k = j->k + (size_t)(h / group) * d, *v = j->v + (size_t)(h / group) * d;           \
            float *s = j->scratch + (size_t)h * (pos + 1);                                                  \
            float slope = p->alibi ? p->alibi[h] : 0.0f, m = -INFINITY;                                     \
            __m512 q[NV], o[NV];                                                                            \
            for (int i = 0; i < NV; i++) {                                                                  \
                q[i] = _mm512_mul_ps(_mm512_loadu_ps(j->q + (size_t)h * d + 16 * i), _mm512_set1_ps(p->scale)); \
                o[i] = _mm512_setzero_ps();                                                                 \
            }                                                                                               \
            for (int t = lo; t <= pos; t++) {                                                               \
                const float *kt = k + (size_t)t * row;                                                      \
                __m512 acc = _mm512_mul_ps(q[0], _mm512_loadu_ps(kt));                                      \
                for (int i = 1; i < NV; i++) acc = _mm512_fmadd_ps(q[i], _mm512_loadu_ps(kt + 16 * i), acc); \
                float x = capped(p, _mm512_reduce_add_ps(acc)) - slope * (float)(pos - t);                  \
                s[t] = x;                                                                                   \
                m = TK_MAX_NAN(x, m);                                                                        \
            }                                                                                               \
            m = with_sink_max(p, h, m);                                                                     \
            float total = with_sink_sum(p, h, m, tk_row_sum_exp(s + lo, m, pos - lo + 1, s + lo));          \
            for (int t = lo; t <= pos; t++) {                                                               \
                const float *vt = v + (size_t)t * row;                                                      \
                __m512 w = _mm512_set1_ps(s[t]);                                                            \
                for (int i = 0; i < NV; i++) o[i] = _mm512_fmadd_ps(w, _mm512_loadu_ps(vt + 16 * i), o[i]); \
            }                                                                                               \
            __m512 inv = _mm512_set1_ps(1.0f / total);                                                      \
            for (int i = 0; i < NV; i++) _mm512_storeu_ps(j->out + (size_t)h * d + 16 * i, _mm512_mul_ps(o[i], inv)); \
        }                                                                                                   \
    }
TK_ATTEND_HEADS(4)
TK_ATTEND_HEADS(8)

/* AVX2: 16 registers of 8 floats. The scores and the weighted sum of values are two loops over
 * the keys, so the query (scoring) and the output (values) never need registers at the same time:
 * head_dim 64 keeps either in 8 registers; wider heads score from memory (the query row stays in
 * L1) and accumulate the output 64 columns at a time, which still reads every cache line of a
 * value row once. */
__attribute__((target("avx2,fma,f16c")))
static void attention_heads_avx2(void *ctx, int begin, int end) {
    const attention_job *j = ctx;
    const tk_decode_attention *p = j->p;
    const int d = p->D, group = p->H / p->KVH, row = p->KVH * d, pos = p->position;
    if (d % 8 != 0) {
        attention_body(j, begin, end, dot_avx2);
        return;
    }
    int lo = 0;
    if (p->window > 0 && pos - p->window + 1 > 0) lo = pos - p->window + 1;
    for (int h = begin; h < end; h++) {
        const float *qh = j->q + (size_t)h * d;
        const float *k = j->k + (size_t)(h / group) * d, *v = j->v + (size_t)(h / group) * d;
        float *s = j->scratch + (size_t)h * (pos + 1);
        float slope = p->alibi ? p->alibi[h] : 0.0f, m = -INFINITY;
        if (d == 64) {
            __m256 q[8];
            for (int i = 0; i < 8; i++) q[i] = _mm256_mul_ps(_mm256_loadu_ps(qh + 8 * i), _mm256_set1_ps(p->scale));
            for (int t = lo; t <= pos; t++) {
                const float *kt = k + (size_t)t * row;
                __m256 a0 = _mm256_mul_ps(q[0], _mm256_loadu_ps(kt)), a1 = _mm256_mul_ps(q[1], _mm256_loadu_ps(kt + 8));
                for (int i = 2; i < 8; i += 2) {
                    a0 = _mm256_fmadd_ps(q[i], _mm256_loadu_ps(kt + 8 * i), a0);
                    a1 = _mm256_fmadd_ps(q[i + 1], _mm256_loadu_ps(kt + 8 * i + 8), a1);
                }
                float x = capped(p, hsum8(_mm256_add_ps(a0, a1))) - slope * (float)(pos - t);
                s[t] = x;
                m = TK_MAX_NAN(x, m);
            }
        } else {
            for (int t = lo; t <= pos; t++) {
                float x = capped(p, dot_avx2(qh, k + (size_t)t * row, d) * p->scale) - slope * (float)(pos - t);
                s[t] = x;
                m = TK_MAX_NAN(x, m);
            }
        }
        m = with_sink_max(p, h, m);
        float inv = 1.0f / with_sink_sum(p, h, m, tk_row_sum_exp(s + lo, m, pos - lo + 1, s + lo));
        float *out = j->out + (size_t)h * d;
        int c0 = 0;
        for (; c0 + 64 <= d; c0 += 64) {
            __m256 o[8];
            for (int i = 0; i < 8; i++) o[i] = _mm256_setzero_ps();
            for (int t = lo; t <= pos; t++) {
                const float *vt = v + (size_t)t * row + c0;
                __m256 w = _mm256_set1_ps(s[t]);
                for (int i = 0; i < 8; i++) o[i] = _mm256_fmadd_ps(w, _mm256_loadu_ps(vt + 8 * i), o[i]);
            }
            for (int i = 0; i < 8; i++) _mm256_storeu_ps(out + c0 + 8 * i, _mm256_mul_ps(o[i], _mm256_set1_ps(inv)));
        }
        for (; c0 < d; c0 += 8) {
            __m256 o = _mm256_setzero_ps();
            for (int t = lo; t <= pos; t++) o = _mm256_fmadd_ps(_mm256_set1_ps(s[t]), _mm256_loadu_ps(v + (size_t)t * row + c0), o);
            _mm256_storeu_ps(out + c0, _mm256_mul_ps(o, _mm256_set1_ps(inv)));
        }
    }
}
#endif

static float dot_generic(const float *a, const float *b, int n) {
    float acc[4] = {0};
    int i = 0;
    for (; i + 4 <= n; i += 4)
        for (int j = 0; j < 4; j++) acc[j] += a[i + j] * b[i + j];
    float s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

static void attention_heads_generic(void *ctx, int begin, int end) { attention_body(ctx, begin, end, dot_generic); }

void tk_decode_attention_run(const tk_decode_attention *p, const float *q, const float *k, const float *v,
                             float *out, float *scratch) {
    attention_job j = {p, q, k, v, out, scratch};
    tk_range_fn heads = attention_heads_generic;
#if defined(__x86_64__)
    switch (tk_simd_level()) {
    case TK_SIMD_AVX512:
        heads = p->D == 64 ? attention_heads_d4 : (p->D == 128 ? attention_heads_d8 : attention_heads_avx512);
        break;
    case TK_SIMD_AVX2: heads = attention_heads_avx2; break;
    default: break;
    }
#endif
    /* Parallel only when there is enough work to pay for the hand-off. */
    if ((long)p->H * (p->position + 1) * p->D < 16384) heads(&j, 0, p->H);
    else tk_pool_for(p->H, heads, &j);
}
