/* C-level tests of the kernels in Sources/CKernels at every SIMD level the CPU has, against float64
 * references. Built and run by scripts/test-c-kernels, natively and, cross-compiled for aarch64,
 * under qemu-aarch64. Each bound is the forward-error bound of the computation in float32
 * (u = 2^-24 per rounding; a sum of n products errs by at most gamma_n = n*u times the sum of the
 * magnitudes; exp/tanh through tk_expf1 add about 1e-7 relative, taken as 4u). */
#include "ckernels.h"
#include "tk_platform.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define U 5.9604644775390625e-8 /* 2^-24 */

static int passed, failed;
static const char *level_name = "";

static void check(int ok, const char *what, double err, double bound) {
    if (ok) { passed++; return; }
    failed++;
    printf("FAIL [%s] %s: error %.3e > bound %.3e\n", level_name, what, err, bound);
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float uniform(void) { /* [-1, 1) */
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}
static float *randoms(size_t n, float scale) {
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = uniform() * scale;
    return p;
}

/* MARK: matrix-vector products */

static void test_gemv(int format, int rows, int cols) {
    float *w = randoms((size_t)rows * cols, 1), *x = randoms(cols, 1), *bias = randoms(rows, 1);
    float *y = calloc(rows, sizeof(float)), *wq = malloc((size_t)rows * cols * sizeof(float));
    uint16_t *b16 = malloc((size_t)rows * cols * 2);
    int8_t *q8 = malloc((size_t)rows * cols);
    float *scales = malloc(rows * sizeof(float));
    tk_matrix m = {rows, cols, format, w, NULL, bias};
    if (format == TK_W_BF16) {
        tk_to_bf16(w, (size_t)rows * cols, b16);
        for (size_t i = 0; i < (size_t)rows * cols; i++) { uint32_t b = (uint32_t)b16[i] << 16; memcpy(&wq[i], &b, 4); }
        m.data = b16;
    } else if (format == TK_W_Q8) {
        tk_quantize_q8(w, rows, cols, q8, scales);
        for (int r = 0; r < rows; r++) for (int c = 0; c < cols; c++) wq[(size_t)r * cols + c] = (float)q8[(size_t)r * cols + c];
        m.data = q8;
        m.scales = scales;
    } else {
        memcpy(wq, w, (size_t)rows * cols * sizeof(float));
    }
    tk_gemv_rows(&m, x, y, 0, rows, 0);
    double worst = 0, bound_ratio = 0;
    for (int r = 0; r < rows; r++) {
        double ref = 0, mag = 0, s = format == TK_W_Q8 ? scales[r] : 1.0;
        for (int c = 0; c < cols; c++) { ref += (double)wq[(size_t)r * cols + c] * x[c]; mag += fabs((double)wq[(size_t)r * cols + c] * x[c]); }
        ref = ref * s + bias[r];
        double bound = (cols + 3) * U * (mag * s + fabs(bias[r])) + 1e-30;
        double e = fabs(y[r] - ref);
        if (e / bound > bound_ratio) { bound_ratio = e / bound; worst = e; }
    }
    char what[64];
    snprintf(what, sizeof what, "gemv format %d %dx%d", format, rows, cols);
    check(bound_ratio <= 1, what, worst, worst / (bound_ratio > 0 ? bound_ratio : 1));
    free(w); free(x); free(bias); free(y); free(wq); free(b16); free(q8); free(scales);
}

/* Batched decoding: tk_gemv_batch over V vectors and two matrices equals the row kernel on each
 * vector, bit for bit (however the pool splits the rows), with accumulate and the GELU. */
static void test_gemv_batch(int vectors, int cols, int accumulate, int activation) {
    int rows[2] = {37, 130};
    float *w0 = randoms((size_t)rows[0] * cols, 1), *w1 = randoms((size_t)rows[1] * cols, 1), *b1 = randoms(rows[1], 1);
    float *x = randoms((size_t)vectors * cols, 1);
    tk_matrix m[2] = {{rows[0], cols, TK_W_F32, w0, NULL, NULL}, {rows[1], cols, TK_W_F32, w1, NULL, b1}};
    float *init0 = randoms((size_t)vectors * rows[0], 1), *init1 = randoms((size_t)vectors * rows[1], 1);
    float *y0 = malloc((size_t)vectors * rows[0] * 4), *y1 = malloc((size_t)vectors * rows[1] * 4);
    float *r0 = malloc((size_t)vectors * rows[0] * 4), *r1 = malloc((size_t)vectors * rows[1] * 4);
    memcpy(y0, init0, (size_t)vectors * rows[0] * 4); memcpy(r0, init0, (size_t)vectors * rows[0] * 4);
    memcpy(y1, init1, (size_t)vectors * rows[1] * 4); memcpy(r1, init1, (size_t)vectors * rows[1] * 4);
    float *ys[2] = {y0, y1};
    tk_gemv_batch(m, 2, x, ys, vectors, accumulate, activation);
    /* The reference: the row kernel on each vector and matrix, then the activation. */
    for (int v = 0; v < vectors; v++) {
        float *rs[2] = {r0 + (size_t)v * rows[0], r1 + (size_t)v * rows[1]};
        for (int i = 0; i < 2; i++) {
            tk_gemv_rows(&m[i], x + (size_t)v * cols, rs[i], 0, rows[i], accumulate);
            if (activation == TK_ACT_GELU_TANH) tk_gelu_tanh_forward(rs[i], rs[i], 0, (size_t)rows[i]);
        }
    }
    int same = memcmp(y0, r0, (size_t)vectors * rows[0] * 4) == 0 && memcmp(y1, r1, (size_t)vectors * rows[1] * 4) == 0;
    char what[80];
    snprintf(what, sizeof what, "gemv batch %d vectors x %d cols (acc %d, act %d)", vectors, cols, accumulate, activation);
    check(same, what, 0, 0);
    free(w0); free(w1); free(b1); free(x); free(init0); free(init1); free(y0); free(y1); free(r0); free(r1);
}

/* MARK: attention of one query over a KV cache */

static void test_decode_attention(int H, int KVH, int D, int position, int window, int alibi) {
    float *q = randoms((size_t)H * D, 1), *k = randoms((size_t)(position + 1) * KVH * D, 1);
    float *v = randoms((size_t)(position + 1) * KVH * D, 1), *out = calloc((size_t)H * D, sizeof(float));
    float *scratch = malloc((size_t)H * (position + 1) * sizeof(float)), slopes[64];
    for (int h = 0; h < H; h++) slopes[h] = 0.05f * (h + 1);
    tk_decode_attention p = {H, KVH, D, position, window, alibi ? slopes : NULL, 1.0f / sqrtf((float)D)};
    tk_decode_attention_run(&p, q, k, v, out, scratch);
    double *s = malloc((size_t)(position + 1) * sizeof(double)), worst = 0;
    int group = H / KVH, lo = window > 0 && position - window + 1 > 0 ? position - window + 1 : 0;
    for (int h = 0; h < H; h++) {
        const float *kh = k + (size_t)(h / group) * D, *vh = v + (size_t)(h / group) * D;
        double m = -INFINITY, total = 0;
        for (int t = lo; t <= position; t++) {
            double acc = 0;
            for (int i = 0; i < D; i++) acc += (double)q[h * D + i] * kh[(size_t)t * KVH * D + i];
            s[t] = acc * p.scale - (alibi ? slopes[h] * (double)(position - t) : 0);
            if (s[t] > m) m = s[t];
        }
        for (int t = lo; t <= position; t++) total += (s[t] = exp(s[t] - m));
        for (int i = 0; i < D; i++) {
            double o = 0;
            for (int t = lo; t <= position; t++) o += s[t] / total * vh[(size_t)t * KVH * D + i];
            double e = fabs(o - out[h * D + i]);
            if (e > worst) worst = e;
        }
    }
    /* Scores: a D-term dot of values <= 1 errs by <= D*u*D*scale = u*D^1.5; exp turns that absolute
     * error into a relative one on each weight; the weighted sum of values <= 1 adds (n + 2)u. */
    int n = position - lo + 1;
    double bound = (pow(D, 1.5) + 4 + n + 2) * U * 2;
    char what[96];
    snprintf(what, sizeof what, "decode attention H%d KVH%d D%d pos%d window%d alibi%d", H, KVH, D, position, window, alibi);
    check(worst <= bound, what, worst, bound);
    free(q); free(k); free(v); free(out); free(scratch); free(s);
}

/* MARK: tiled attention forward (training) */

static void test_tiled_attention(int B, int T, int H, int KVH, int D, int window, float dropout) {
    size_t nq = (size_t)B * T * H * D, nk = (size_t)B * T * KVH * D;
    float *q = randoms(nq, 1), *k = randoms(nk, 1), *v = randoms(nk, 1);
    float *out = calloc(nq, sizeof(float)), *lse = calloc((size_t)B * H * T, sizeof(float));
    tk_attention p = {B, T, T, H, KVH, D, 1, window, 0, NULL, 1.0f / sqrtf((float)D), 32, 64, T, 0, NULL, dropout, 42};
    tk_attention_forward_tiled(&p, q, k, v, out, lse, 0, tk_attention_forward_items(&p));
    double worst = 0, *s = malloc(T * sizeof(double));
    float *mask = malloc(T * sizeof(float));
    int group = H / KVH;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++) {
                const float *qi = q + (((size_t)b * T + i) * H + h) * D;
                double m = -INFINITY, total = 0;
                int lo = window > 0 && i - window + 1 > 0 ? i - window + 1 : 0;
                for (int j = lo; j <= i; j++) {
                    const float *kj = k + (((size_t)b * T + j) * KVH + h / group) * D;
                    double acc = 0;
                    for (int d = 0; d < D; d++) acc += (double)qi[d] * kj[d];
                    s[j] = acc * p.scale;
                    if (s[j] > m) m = s[j];
                }
                for (int j = lo; j <= i; j++) total += (s[j] = exp(s[j] - m));
                /* dropout: the weights after the softmax, times the mask of row (b, h, i) / (1 - p) */
                tk_dropout_mask(42, ((uint64_t)b * H + h) * T + i, 0, T, dropout, mask);
                for (int d = 0; d < D; d++) {
                    double o = 0;
                    for (int j = lo; j <= i; j++)
                        o += s[j] / total * mask[j] / (1.0 - dropout) * v[(((size_t)b * T + j) * KVH + h / group) * D + d];
                    double e = fabs(o - out[(((size_t)b * T + i) * H + h) * D + d]);
                    if (e > worst) worst = e;
                }
            }
    double bound = (pow(D, 1.5) + 4 + T + 2 + 2 * T / 64) * U * 2; /* as above, plus one rescale per key tile */
    char what[96];
    snprintf(what, sizeof what, "tiled attention B%d T%d H%d KVH%d D%d window%d dropout%g", B, T, H, KVH, D, window, dropout);
    check(worst <= bound / (1 - dropout), what, worst, bound / (1 - dropout)); /* the bound scales with the kept weights */
    free(q); free(k); free(v); free(out); free(lse); free(s); free(mask);
}

/* MARK: dropout masks */

static void test_dropout(void) {
    enum { N = 1 << 18 };
    const float p = 0.25f;
    float *x = randoms(N, 1), *y = malloc(N * sizeof(float)), *mask = malloc(1024 * sizeof(float));
    tk_dropout(x, y, 5, N - 3, 7, p, 1 / (1 - p), 0);
    int mismatched = 0;
    long kept = 0;
    for (long i = 5; i < N - 3; i += 1024 - i % 1024) {
        long row = i / 1024, col = i % 1024, n = 1024 - col < N - 3 - i ? 1024 - col : N - 3 - i;
        tk_dropout_mask(7, (uint64_t)row, (uint32_t)col, (int)n, p, mask);
        for (long c = 0; c < n; c++) {
            float want = x[i + c] * (mask[c] != 0 ? 1 / (1 - p) : 0);
            mismatched += y[i + c] != want;
            kept += mask[c] != 0;
        }
    }
    check(mismatched == 0, "dropout: tk_dropout drops what tk_dropout_mask names", mismatched, 0);
    /* The kept fraction is binomial: within 5 standard deviations of 1 - p. */
    double n = N - 8, frac = kept / n, sd = sqrt(p * (1 - p) / n);
    check(fabs(frac - (1 - p)) <= 5 * sd, "dropout: kept fraction near 1 - p", fabs(frac - (1 - p)), 5 * sd);
    free(x); free(y); free(mask);
}

/* MARK: elementwise and row kernels */

static void test_rows(void) {
    enum { R = 7, N = 301 };
    float *x = randoms(R * N, 4), *y = malloc(R * N * sizeof(float)), lse[R], w[N], b[N], stats[2 * R];
    for (int j = 0; j < N; j++) { w[j] = uniform(); b[j] = uniform(); }
    /* GELU (tanh) and SiLU: a few roundings plus tk_expf1 (<= 4u relative each). */
    tk_gelu_tanh_forward(x, y, 0, R * N);
    double worst = 0;
    for (int i = 0; i < R * N; i++) {
        double v = x[i], ref = 0.5 * v * (1 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
        double e = fabs(y[i] - ref) / (fabs(v) + 1e-30);
        if (e > worst) worst = e;
    }
    check(worst <= 32 * U, "gelu_tanh forward (relative to |x|)", worst, 32 * U);
    tk_silu_forward(x, y, 0, R * N);
    worst = 0;
    for (int i = 0; i < R * N; i++) {
        double v = x[i], ref = v / (1 + exp(-v)), e = fabs(y[i] - ref) / (fabs(ref) + 1e-30);
        if (e > worst) worst = e;
    }
    check(worst <= 16 * U, "silu forward (relative)", worst, 16 * U);
    /* log-sum-exp: N exps (4u each, relative) summed (N u), then a log: absolute error ~ (N + 8)u. */
    tk_logsumexp_rows(x, lse, N, 0, R);
    worst = 0;
    for (int r = 0; r < R; r++) {
        double m = -INFINITY, s = 0;
        for (int j = 0; j < N; j++) if (x[r * N + j] > m) m = x[r * N + j];
        for (int j = 0; j < N; j++) s += exp(x[r * N + j] - m);
        double e = fabs(lse[r] - (m + log(s)));
        if (e > worst) worst = e;
    }
    check(worst <= (N + 8) * U * 4, "logsumexp rows", worst, (N + 8) * U * 4);
    /* LayerNorm: mean and variance are N-term sums (N u relative each); the output (x - mean) * rstd
     * * w + b is then within ~(N + 6)u of |x - mean| * rstd * |w| + |b| (values here are <= ~10). */
    tk_layernorm_forward(x, w, b, 1e-5f, N, y, stats, 0, R);
    worst = 0;
    for (int r = 0; r < R; r++) {
        double mean = 0, var = 0;
        for (int j = 0; j < N; j++) mean += x[r * N + j];
        mean /= N;
        for (int j = 0; j < N; j++) var += (x[r * N + j] - mean) * (x[r * N + j] - mean);
        double rstd = 1 / sqrt(var / N + 1e-5);
        for (int j = 0; j < N; j++) {
            double ref = (x[r * N + j] - mean) * rstd * w[j] + b[j];
            double e = fabs(y[r * N + j] - ref) / (fabs((x[r * N + j] - mean) * rstd * w[j]) + fabs(b[j]) + fabs(mean * rstd));
            if (e > worst) worst = e;
        }
    }
    check(worst <= (N + 6) * U, "layernorm forward (relative)", worst, (N + 6) * U);
    tk_rmsnorm_forward(x, w, 1e-6f, N, y, stats, 0, R);
    worst = 0;
    for (int r = 0; r < R; r++) {
        double ms = 0;
        for (int j = 0; j < N; j++) ms += (double)x[r * N + j] * x[r * N + j];
        double rstd = 1 / sqrt(ms / N + 1e-6);
        for (int j = 0; j < N; j++) {
            double ref = x[r * N + j] * rstd * w[j], e = fabs(y[r * N + j] - ref) / (fabs(ref) + 1e-30);
            if (e > worst) worst = e;
        }
    }
    check(worst <= (N / 2 + 6) * U, "rmsnorm forward (relative)", worst, (N / 2 + 6) * U);
    free(x); free(y);
}

/* MARK: AdamW against the update in float64 */

static void test_adam(void) {
    enum { N = 1000 };
    float *p = randoms(N, 1), *g = randoms(N, 1), *m = randoms(N, 0.1f), *v = malloc(N * sizeof(float));
    double pd[N], md[N], vd[N];
    for (int i = 0; i < N; i++) { v[i] = fabsf(uniform()) * 0.01f; pd[i] = p[i]; md[i] = m[i]; vd[i] = v[i]; }
    tk_adam_scalars s = {0.0f, 1.0f - 1e-3f * 0.1f, 0.1f, 0.999f, 0.001f, sqrtf(1 - 0.999f * 0.999f), 1e-8f, 1e-3f / (1 - 0.81f), 1};
    tk_adam_update(p, g, m, v, 0, N, &s);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double d = g[i];
        pd[i] *= s.shrink;
        md[i] += (d - md[i]) * s.w1;
        vd[i] = s.b2 * vd[i] + s.w2 * d * d;
        double upd = s.step_size * md[i] / (sqrt(vd[i]) / s.bc2_sqrt + s.eps);
        pd[i] -= upd;
        double e = fabs(p[i] - pd[i]) / (fabs(pd[i]) + fabs(upd));
        if (e > worst) worst = e;
    }
    check(worst <= 12 * U, "adamw update (relative)", worst, 12 * U);
    free(p); free(g); free(m); free(v);
}

/* MARK: byte streams */

static uint32_t crc_bitwise(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return ~c;
}

static void test_bytes(void) {
    {   /* tk_first_nonfinite: none, a NaN inside a 64-block, an infinity in the tail */
        float v[200];
        for (int t = 0; t < 200; t++) v[t] = (float)t - 100.0f;
        check(tk_first_nonfinite(v, 200) == -1, "first_nonfinite clean", 0, 0);
        v[70] = NAN;
        check(tk_first_nonfinite(v, 200) == 70, "first_nonfinite NaN at 70", 0, 0);
        v[70] = 0.0f; v[199] = -INFINITY;
        check(tk_first_nonfinite(v, 200) == 199, "first_nonfinite -inf at 199", 0, 0);
    }

    uint8_t buf[1000];
    for (int i = 0; i < 1000; i++) buf[i] = (uint8_t)(uniform() * 127 + 128);
    int ok = 1;
    for (size_t n = 0; n <= 1000; n += 37) ok &= tk_crc32(0, buf, n) == crc_bitwise(buf, n);
    ok &= tk_crc32(tk_crc32(0, buf, 500), buf + 500, 500) == crc_bitwise(buf, 1000);
    check(ok, "crc32 against the bitwise definition", 0, 0);
    const uint8_t good[] = "plain ASCII text that is longer than thirty-two bytes \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 end";
    const uint8_t overlong[] = "abc\xc0\xaf", surrogate[] = "\xed\xa0\x80", cut[] = "ok \xe2\x82";
    check(tk_utf8_invalid_offset(good, sizeof good - 1) == -1, "utf8 valid text", 0, 0);
    check(tk_utf8_invalid_offset(overlong, sizeof overlong - 1) == 3, "utf8 overlong", 0, 0);
    check(tk_utf8_invalid_offset(surrogate, sizeof surrogate - 1) == 0, "utf8 surrogate", 0, 0);
    check(tk_utf8_invalid_offset(cut, sizeof cut - 1) == 3, "utf8 truncated", 0, 0);
}

/* MARK: the pool covers every item exactly once */

static int counts[4096];
static void count_range(void *ctx, int begin, int end) {
    (void)ctx;
    for (int i = begin; i < end; i++) __atomic_fetch_add(&counts[i], 1, __ATOMIC_RELAXED);
}

static void test_pool(const char *what, int rounds) {
    int ok = 1;
    for (int round = 0; round < rounds; round++) {
        int n = 1 + (round * 37) % 4096;
        memset(counts, 0, sizeof counts);
        tk_pool_for(n, count_range, NULL);
        for (int i = 0; i < n; i++) ok &= counts[i] == 1;
    }
    check(ok, what, 0, 0);
}

static void run_level(int level) {
    tk_simd_set(level);
    level_name = tk_simd_name(level);
    int before = failed;
    for (int f = 0; f < 3; f++) {
        test_gemv(f, 37, 301);
        test_gemv(f, 64, 768);
        test_gemv(f, 5, 7);
    }
    test_gemv_batch(1, 64, 0, TK_ACT_NONE);
    test_gemv_batch(5, 301, 1, TK_ACT_NONE);
    test_gemv_batch(8, 96, 0, TK_ACT_GELU_TANH);
    test_decode_attention(4, 4, 64, 40, 0, 0);
    test_decode_attention(8, 2, 128, 300, 0, 1);
    test_decode_attention(4, 2, 40, 100, 16, 0);
    test_decode_attention(2, 1, 96, 17, 0, 0);
    test_tiled_attention(2, 70, 4, 2, 64, 0, 0);
    test_tiled_attention(1, 130, 2, 1, 48, 20, 0);
    test_tiled_attention(2, 70, 4, 2, 64, 0, 0.3f);
    test_dropout();
    test_rows();
    test_adam();
    test_bytes();
    printf("%-8s %s\n", level_name, failed == before ? "ok" : "FAILED");
}

int main(void) {
    tk_pool_configure(2);
    test_pool("pool: each item once", 200);
    /* Beside a busy process the workers miss jobs and the pool falls back to the caller alone, then
     * probes again: every item still runs exactly once through both modes. */
    int busy = tk_busy_start();
    test_pool("pool beside a busy process: each item once", 20000);
    tk_busy_stop(busy);
    test_pool("pool after the busy process: each item once", 2000);
    for (int level = 0; level <= TK_SIMD_NEON; level++)
        if (tk_simd_supported(level)) run_level(level);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
