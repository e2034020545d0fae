#include "ckernels.h"
#include "tk_math.h"
#include <string.h>
#include <math.h>

/* tanh(u) = 1 - 2 / (exp(2u) + 1), with |u| clamped to 9 (tanh(9) = 1 in float32). */
static inline float th(float u) {
    u = u > 9.0f ? 9.0f : (u < -9.0f ? -9.0f : u);
    return 1.0f - 2.0f / (tk_expf1(2.0f * u) + 1.0f);
}

static inline float sigm(float x) { return 1.0f / (1.0f + tk_expf1(-x)); }

#define K0 0.7978845608028654f /* sqrt(2/pi) */
#define K1 0.044715f

TK_KERNEL(tk_gelu_tanh_forward, (const float *x, float *y, size_t begin, size_t end), (x, y, begin, end)) {
    /* The output may be one of the inputs (in place): safe element by element; without this the
     * runtime overlap check fails for in-place calls and the scalar loop runs. */
#pragma clang loop vectorize(assume_safety)
    for (size_t i = begin; i < end; i++) {
        float v = x[i];
        y[i] = 0.5f * v * (1.0f + th(K0 * (v + K1 * v * v * v)));
    }
}

static inline __attribute__((always_inline)) void gelu_tanh_backward(const float *x, const float *dy, float *dx, const int accumulate,
                                                                      size_t begin, size_t end) {
    for (size_t i = begin; i < end; i++) {
        float v = x[i];
        float t = th(K0 * (v + K1 * v * v * v));
        float g = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * K0 * (1.0f + 3.0f * K1 * v * v);
        TK_PUT(dx[i], dy[i] * g);
    }
}

TK_KERNEL(tk_gelu_tanh_backward, (const float *x, const float *dy, float *dx, int accumulate, size_t begin, size_t end), (x, dy, dx, accumulate, begin, end)) {
    TK_ACCUMULATE_OR_WRITE(accumulate, gelu_tanh_backward(x, dy, dx, accumulate_, begin, end));
}

TK_KERNEL(tk_silu_forward, (const float *x, float *y, size_t begin, size_t end), (x, y, begin, end)) {
    /* The output may be one of the inputs (in place): safe element by element; without this the
     * runtime overlap check fails for in-place calls and the scalar loop runs. */
#pragma clang loop vectorize(assume_safety)
    for (size_t i = begin; i < end; i++) y[i] = x[i] * sigm(x[i]);
}

static inline __attribute__((always_inline)) void silu_backward(const float *x, const float *dy, float *dx, const int accumulate,
                                                                 size_t begin, size_t end) {
    for (size_t i = begin; i < end; i++) {
        float s = sigm(x[i]);
        TK_PUT(dx[i], dy[i] * s * (1.0f + x[i] * (1.0f - s)));
    }
}

TK_KERNEL(tk_silu_backward, (const float *x, const float *dy, float *dx, int accumulate, size_t begin, size_t end), (x, dy, dx, accumulate, begin, end)) {
    TK_ACCUMULATE_OR_WRITE(accumulate, silu_backward(x, dy, dx, accumulate_, begin, end));
}

TK_KERNEL(tk_swiglu_forward, (const float *gate, const float *up, float *y, size_t begin, size_t end), (gate, up, y, begin, end)) {
    /* The output may be one of the inputs (in place): safe element by element; without this the
     * runtime overlap check fails for in-place calls and the scalar loop runs. */
#pragma clang loop vectorize(assume_safety)
    for (size_t i = begin; i < end; i++) y[i] = gate[i] * sigm(gate[i]) * up[i];
}

static inline __attribute__((always_inline)) void swiglu_backward(const float *gate, const float *up, const float *dy, float *dgate,
                                                                   float *dup, const int accumulate, size_t begin, size_t end) {
    if (dgate && dup) {
        for (size_t i = begin; i < end; i++) {
            float g = gate[i], s = sigm(g);
            TK_PUT(dgate[i], dy[i] * up[i] * s * (1.0f + g * (1.0f - s)));
            TK_PUT(dup[i], dy[i] * g * s);
        }
    } else if (dgate) {
        for (size_t i = begin; i < end; i++) {
            float g = gate[i], s = sigm(g);
            TK_PUT(dgate[i], dy[i] * up[i] * s * (1.0f + g * (1.0f - s)));
        }
    } else if (dup) {
        for (size_t i = begin; i < end; i++) TK_PUT(dup[i], dy[i] * gate[i] * sigm(gate[i]));
    }
}

TK_KERNEL(tk_swiglu_backward, (const float *gate, const float *up, const float *dy, float *dgate, float *dup, int accumulate, size_t begin, size_t end), (gate, up, dy, dgate, dup, accumulate, begin, end)) {
    TK_ACCUMULATE_OR_WRITE(accumulate, swiglu_backward(gate, up, dy, dgate, dup, accumulate_, begin, end));
}

static inline __attribute__((always_inline)) float row_lse(const float *x, int n) {
    float m = tk_row_max(x, n);
    if (m == -INFINITY) return -INFINITY;
    return m + logf(tk_row_sum_exp(x, m, n, NULL));
}

TK_KERNEL(tk_softmax_rows, (const float *x, float *y, int n, int row_begin, int row_end), (x, y, n, row_begin, row_end)) {
    for (int r = row_begin; r < row_end; r++) {
        const float *xr = x + (size_t)r * n;
        float *yr = y + (size_t)r * n;
        float m = tk_row_max(xr, n), s = tk_row_sum_exp(xr, m, n, yr);
        float inv = 1.0f / s;
        for (int j = 0; j < n; j++) yr[j] *= inv;
    }
}

TK_KERNEL(tk_logsumexp_rows, (const float *x, float *lse, int n, int row_begin, int row_end), (x, lse, n, row_begin, row_end)) {
    for (int r = row_begin; r < row_end; r++) lse[r] = row_lse(x + (size_t)r * n, n);
}

TK_KERNEL(tk_cross_entropy_forward, (const float *logits, const int *targets, int ignore_index, int n, float *lse, float *loss, int row_begin, int row_end), (logits, targets, ignore_index, n, lse, loss, row_begin, row_end)) {
    for (int r = row_begin; r < row_end; r++) {
        const float *xr = logits + (size_t)r * n;
        float l = row_lse(xr, n);
        lse[r] = l;
        int t = targets[r];
        loss[r] = t == ignore_index ? 0.0f : l - xr[t];
    }
}

static inline __attribute__((always_inline)) void cross_entropy_backward_row(const float *xr, int t, int n, float m, float scale,
                                                                              float *dr, const int accumulate) {
    for (int j = 0; j < n; j++) TK_PUT(dr[j], scale * tk_expf1(xr[j] - m));
    dr[t] -= scale;
}

TK_KERNEL(tk_cross_entropy_backward, (const float *logits, const int *targets, int ignore_index, int n, const float *lse, float scale, float *dlogits, int accumulate, int row_begin, int row_end), (logits, targets, ignore_index, n, lse, scale, dlogits, accumulate, row_begin, row_end)) {
    for (int r = row_begin; r < row_end; r++) {
        int t = targets[r];
        float *dr = dlogits + (size_t)r * n;
        if (t == ignore_index) {
            if (!accumulate) memset(dr, 0, sizeof(float) * (size_t)n);
            continue;
        }
        TK_ACCUMULATE_OR_WRITE(accumulate, cross_entropy_backward_row(logits + (size_t)r * n, t, n, lse[r], scale, dr, accumulate_));
    }
}

/* One head's rotation: pairs (i, i + half) (`rotate_half`) or (2i, 2i + 1) (interleaved); the dims
 * past 2 * half pass through. Inlined per (layout, accumulate), so each loop vectorises. */
static inline __attribute__((always_inline)) void rope_head(const float *xs, float *ys, const float *c, const float *s, int half,
                                                             int d, float dir, const int interleaved, const int accumulate) {
    if (interleaved) {
        for (int i = 0; i < half; i++) {
            float a = xs[2 * i], b = xs[2 * i + 1], cs = c[i], sn = dir * s[i];
            TK_PUT(ys[2 * i], a * cs - b * sn);
            TK_PUT(ys[2 * i + 1], b * cs + a * sn);
        }
    } else {
        for (int i = 0; i < half; i++) {
            float a = xs[i], b = xs[i + half], cs = c[i], sn = dir * s[i];
            TK_PUT(ys[i], a * cs - b * sn);
            TK_PUT(ys[i + half], b * cs + a * sn);
        }
    }
    for (int j = 2 * half; j < d; j++) TK_PUT(ys[j], xs[j]);
}

TK_KERNEL(tk_rope_rows, (const float *x, float *y, const float *cos_table, const float *sin_table, int t, int h, int d, int half, int offset, int interleaved, float dir, int accumulate, int row_begin, int row_end), (x, y, cos_table, sin_table, t, h, d, half, offset, interleaved, dir, accumulate, row_begin, row_end)) {
    for (int row = row_begin; row < row_end; row++) {
        int pos = offset + row % t;
        const float *c = cos_table + (size_t)pos * half, *s = sin_table + (size_t)pos * half;
        for (int hh = 0; hh < h; hh++) {
            size_t base = ((size_t)row * h + hh) * d;
            if (interleaved) TK_ACCUMULATE_OR_WRITE(accumulate, rope_head(x + base, y + base, c, s, half, d, dir, 1, accumulate_));
            else TK_ACCUMULATE_OR_WRITE(accumulate, rope_head(x + base, y + base, c, s, half, d, dir, 0, accumulate_));
        }
    }
}
