/* Shared inline math for the C kernels (not part of the public interface). */
#ifndef TK_MATH_H
#define TK_MATH_H

#include <math.h>

#include "tk_platform.h"

/* One kernel, compiled once per SIMD level and dispatched on the level in effect (tk_simd_level(),
 * which TOOLKIT_SIMD can lower so that every path is tested on one machine):
 *
 *     TK_KERNEL(tk_name, (const float *x, int n), (x, n)) { ... body, which may read tk_lvl ... }
 *
 * defines tk_name(x, n). The body is an always-inline function taking the level as a constant
 * first argument `tk_lvl`, so one source can choose a register blocking per level and the
 * compiler vectorises each copy for its own instruction set (x86-64-v4 and x86-64-v3 copies on
 * x86-64; elsewhere the one portable copy, which is NEON on aarch64). */
#define TK_EXPAND(...) __VA_ARGS__
#if defined(__x86_64__)
#define TK_TARGET_AVX512 __attribute__((target("arch=x86-64-v4")))
#define TK_TARGET_AVX2 __attribute__((target("arch=x86-64-v3")))
#define TK_KERNEL(name, params, args)                                                                        \
    static inline __attribute__((always_inline)) void name##_body(const int tk_lvl, TK_EXPAND params);       \
    TK_TARGET_AVX512 static void name##_avx512 params { name##_body(TK_SIMD_AVX512, TK_EXPAND args); }      \
    TK_TARGET_AVX2 static void name##_avx2 params { name##_body(TK_SIMD_AVX2, TK_EXPAND args); }            \
    static void name##_portable params { name##_body(TK_SIMD_PORTABLE, TK_EXPAND args); }                   \
    void name params {                                                                                      \
        switch (tk_simd_level()) {                                                                          \
        case TK_SIMD_AVX512: name##_avx512 args; return;                                                    \
        case TK_SIMD_AVX2: name##_avx2 args; return;                                                        \
        default: name##_portable args; return;                                                              \
        }                                                                                                   \
    }                                                                                                       \
    static inline __attribute__((always_inline)) void name##_body(const int tk_lvl, TK_EXPAND params)
#else
#define TK_KERNEL(name, params, args)                                                                        \
    static inline __attribute__((always_inline)) void name##_body(const int tk_lvl, TK_EXPAND params);       \
    void name params { name##_body(TK_SIMD_PORTABLE, TK_EXPAND args); }                                     \
    static inline __attribute__((always_inline)) void name##_body(const int tk_lvl, TK_EXPAND params)
#endif

/* Vectorisable expf (Cephes polynomial: x = n*ln2 + r, polynomial on r, scaled by 2^n), about
 * 1e-7 relative error; returns 0 below -87.3. */
static inline float tk_expf1(float x) {
    const float hi = 88.3762626647949f;
    int under = x < -87.3f;
    x = x > hi ? hi : x;
    x = x < -87.3f ? -87.3f : x;
    float fx = floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - fx * 0.693359375f + fx * 2.12194440e-4f;
    float z = r * r;
    float y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * z + r + 1.0f;
    union { int i; float f; } u;
    u.i = ((int)fx + 127) << 23;
    float res = y * u.f;
    return under ? 0.0f : res;
}

/* Reductions keep 16 independent lanes so that they vectorise without reassociating a single sum
 * (a serial float sum of exps is what kept the cross-entropy forward scalar). */
#define TK_RL 16

/* max(a, b) that propagates NaN (a NaN operand wins), unlike fmaxf and a plain comparison: a NaN
 * score must reach the output, never be taken for a masked (-inf) entry. */
/* dst += v when `accumulate` is set, dst = v otherwise (a new gradient buffer, never zero-filled,
 * may hold anything). Use it in an always-inline helper that the kernel calls with a literal 0 or 1
 * (TK_ACCUMULATE_OR_WRITE), so each copy of the loop has a constant flag: with a run-time flag
 * clang if-converts it into masked stores, which AMD's cores microcode (the RMSNorm backward ran
 * ~3x slower). */
#define TK_PUT(dst, v) do { if (accumulate) (dst) += (v); else (dst) = (v); } while (0)
#define TK_ACCUMULATE_OR_WRITE(flag, call_with_accumulate) \
    do { if (flag) { const int accumulate_ = 1; call_with_accumulate; } else { const int accumulate_ = 0; call_with_accumulate; } } while (0)

#define TK_MAX_NAN(a, b) (((a) > (b) || (a) != (a)) ? (a) : (b))

static inline __attribute__((always_inline)) float tk_row_max(const float *x, int n) {
    float lane[TK_RL];
    for (int i = 0; i < TK_RL; i++) lane[i] = -INFINITY;
    int j = 0;
    for (; j + TK_RL <= n; j += TK_RL)
        for (int i = 0; i < TK_RL; i++) lane[i] = TK_MAX_NAN(x[j + i], lane[i]);
    float m = -INFINITY;
    for (int i = 0; i < TK_RL; i++) m = TK_MAX_NAN(lane[i], m);
    for (; j < n; j++) m = TK_MAX_NAN(x[j], m);
    return m;
}

/* sum_j x[j] */
static inline __attribute__((always_inline)) float tk_row_sum(const float *x, int n) {
    float lane[TK_RL] = {0};
    int j = 0;
    for (; j + TK_RL <= n; j += TK_RL)
        for (int i = 0; i < TK_RL; i++) lane[i] += x[j + i];
    float s = 0.0f;
    for (int i = 0; i < TK_RL; i++) s += lane[i];
    for (; j < n; j++) s += x[j];
    return s;
}

/* sum_j x[j] * y[j] (y may be x) */
static inline __attribute__((always_inline)) float tk_row_dot(const float *x, const float *y, int n) {
    float lane[TK_RL] = {0};
    int j = 0;
    for (; j + TK_RL <= n; j += TK_RL)
        for (int i = 0; i < TK_RL; i++) lane[i] += x[j + i] * y[j + i];
    float s = 0.0f;
    for (int i = 0; i < TK_RL; i++) s += lane[i];
    for (; j < n; j++) s += x[j] * y[j];
    return s;
}

/* sum_j exp(x[j] - m), optionally storing the exps in y (y may be x). */
static inline __attribute__((always_inline)) float tk_row_sum_exp(const float *x, float m, int n, float *y) {
    float lane[TK_RL] = {0};
    int j = 0;
    for (; j + TK_RL <= n; j += TK_RL)
        for (int i = 0; i < TK_RL; i++) {
            float e = tk_expf1(x[j + i] - m);
            if (y) y[j + i] = e;
            lane[i] += e;
        }
    float s = 0.0f;
    for (int i = 0; i < TK_RL; i++) s += lane[i];
    for (; j < n; j++) {
        float e = tk_expf1(x[j] - m);
        if (y) y[j] = e;
        s += e;
    }
    return s;
}


/* MARK: dropout masks from a counter-based hash
 *
 * A dropout mask is never stored: element (row, col) of a mask with seed `seed` is kept when
 * tk_mix32(key + col * 0x9E3779B9) >= threshold, with key = tk_dropout_key(seed, row) (64-bit
 * SplitMix64 finaliser) and threshold = round(p * 2^32). The forward and the backward regenerate
 * the same bits from (seed, row, col), so a T x T attention mask costs no memory, and the naive and
 * tiled attention kernels drop the same entries. tk_mix32 is a bijection of 32-bit words (Wellons'
 * "lowbias32"), so for a fixed row different columns never share an input word. */
#include <stdint.h>

static inline __attribute__((always_inline)) uint32_t tk_mix32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

static inline uint32_t tk_dropout_key(uint64_t seed, uint64_t row) {
    uint64_t z = seed + (row + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (uint32_t)(z >> 32);
}

/* round(p * 2^32), clamped to the largest word (p < 1 is checked by the callers). */
static inline uint32_t tk_dropout_threshold(float p) {
    double t = (double)p * 4294967296.0 + 0.5;
    return t >= 4294967295.0 ? 0xFFFFFFFFu : t <= 0 ? 0u : (uint32_t)t;
}

/* The factor of mask column col0 + c of a row with `key`: `scale` when kept, else 0. */
#define TK_DROPOUT_FACTOR(key, col, threshold, scale) \
    (tk_mix32((key) + (col) * 0x9E3779B9u) >= (threshold) ? (scale) : 0.0f)

/* y[c] = x[c] * factor(col0 + c) (or += with accumulate) for c < n; y may be x. A dropped NaN stays
 * NaN, as in torch (the mask multiplies). */
static inline __attribute__((always_inline)) void tk_dropout_row(const float *x, float *y, int n, uint32_t key, uint32_t col0,
                                                                 uint32_t threshold, float scale, int accumulate) {
    if (accumulate) {
        for (int c = 0; c < n; c++) y[c] += x[c] * TK_DROPOUT_FACTOR(key, col0 + (uint32_t)c, threshold, scale);
    } else {
        for (int c = 0; c < n; c++) y[c] = x[c] * TK_DROPOUT_FACTOR(key, col0 + (uint32_t)c, threshold, scale);
    }
}

/* m[c] = factor(col0 + c) for c < n: the mask itself, scaled. */
static inline __attribute__((always_inline)) void tk_dropout_factors(float *m, int n, uint32_t key, uint32_t col0, uint32_t threshold,
                                                                     float scale) {
    for (int c = 0; c < n; c++) m[c] = TK_DROPOUT_FACTOR(key, col0 + (uint32_t)c, threshold, scale);
}

#endif
