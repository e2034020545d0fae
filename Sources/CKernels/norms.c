/* LayerNorm / RMSNorm over rows (the training path and the decode engine), and their weight
 * gradients and bias gradients as column sums. Row reductions keep TK_RL independent lanes so they
 * vectorise (a serial float sum does not). Forward kernels may run in place (y == x). */
#include "ckernels.h"
#include "tk_math.h"
#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* sum_j (x[j] - mean)^2 */
static inline __attribute__((always_inline)) float lane_centered_squares(const float *x, float mean, int n) {
    float lane[TK_RL] = {0};
    int j = 0;
    for (; j + TK_RL <= n; j += TK_RL)
        for (int i = 0; i < TK_RL; i++) { float d = x[j + i] - mean; lane[i] += d * d; }
    float s = 0.0f;
    for (int i = 0; i < TK_RL; i++) s += lane[i];
    for (; j < n; j++) { float d = x[j] - mean; s += d * d; }
    return s;
}

TK_KERNEL(tk_layernorm_forward, (const float *x, const float *w, const float *b, float eps, int c, float *y, float *stats, int row_begin, int row_end), (x, w, b, eps, c, y, stats, row_begin, row_end)) {
    for (int row = row_begin; row < row_end; row++) {
        const float *xr = x + (size_t)row * c;
        float *yr = y + (size_t)row * c;
        float mean = tk_row_sum(xr, c) / (float)c;
        float rstd = 1.0f / sqrtf(lane_centered_squares(xr, mean, c) / (float)c + eps);
        stats[2 * row] = mean;
        stats[2 * row + 1] = rstd;
        if (w && b) for (int j = 0; j < c; j++) yr[j] = (xr[j] - mean) * rstd * w[j] + b[j];
        else if (w) for (int j = 0; j < c; j++) yr[j] = (xr[j] - mean) * rstd * w[j];
        else if (b) for (int j = 0; j < c; j++) yr[j] = (xr[j] - mean) * rstd + b[j];
        else for (int j = 0; j < c; j++) yr[j] = (xr[j] - mean) * rstd;
    }
}

/* One row of LayerNorm's backward; inlined with constant w == NULL or not and accumulate 0 or 1, so
 * neither is a per-element branch (if-converted, they became masked loads and stores). */
static inline __attribute__((always_inline)) void layernorm_backward_row(const float *xr, const float *gr, const float *w, float mean,
                                                                          float rstd, int c, float *dr, const int accumulate) {
    float l1[TK_RL] = {0}, l2[TK_RL] = {0};
    int j = 0;
    for (; j + TK_RL <= c; j += TK_RL)
        for (int i = 0; i < TK_RL; i++) {
            float n = (xr[j + i] - mean) * rstd, dn = w ? gr[j + i] * w[j + i] : gr[j + i];
            l1[i] += dn;
            l2[i] += dn * n;
        }
    float s1 = 0.0f, s2 = 0.0f;
    for (int i = 0; i < TK_RL; i++) { s1 += l1[i]; s2 += l2[i]; }
    for (; j < c; j++) {
        float n = (xr[j] - mean) * rstd, dn = w ? gr[j] * w[j] : gr[j];
        s1 += dn;
        s2 += dn * n;
    }
    float m1 = s1 / (float)c, m2 = s2 / (float)c;
    for (j = 0; j < c; j++) {
        float n = (xr[j] - mean) * rstd, dn = w ? gr[j] * w[j] : gr[j];
        TK_PUT(dr[j], rstd * (dn - m1 - n * m2));
    }
}

TK_KERNEL(tk_layernorm_backward, (const float *x, const float *g, const float *w, const float *stats, int c, float *dx, int accumulate, int row_begin, int row_end), (x, g, w, stats, c, dx, accumulate, row_begin, row_end)) {
    for (int row = row_begin; row < row_end; row++) {
        const float *xr = x + (size_t)row * c, *gr = g + (size_t)row * c;
        float *dr = dx + (size_t)row * c;
        float mean = stats[2 * row], rstd = stats[2 * row + 1];
        if (w) TK_ACCUMULATE_OR_WRITE(accumulate, layernorm_backward_row(xr, gr, w, mean, rstd, c, dr, accumulate_));
        else TK_ACCUMULATE_OR_WRITE(accumulate, layernorm_backward_row(xr, gr, NULL, mean, rstd, c, dr, accumulate_));
    }
}

TK_KERNEL(tk_rmsnorm_forward, (const float *x, const float *w, float eps, int c, float *y, float *rstd_out, int row_begin, int row_end), (x, w, eps, c, y, rstd_out, row_begin, row_end)) {
    for (int row = row_begin; row < row_end; row++) {
        const float *xr = x + (size_t)row * c;
        float *yr = y + (size_t)row * c;
        float rstd = 1.0f / sqrtf(tk_row_dot(xr, xr, c) / (float)c + eps);
        rstd_out[row] = rstd;
        /* HF order: (x * rstd) then * weight */
        if (w) for (int j = 0; j < c; j++) yr[j] = (xr[j] * rstd) * w[j];
        else for (int j = 0; j < c; j++) yr[j] = xr[j] * rstd;
    }
}

/* One row of RMSNorm's backward; inlined with constant w == NULL or not and accumulate 0 or 1, so
 * neither is a per-element branch (if-converted, it became masked loads and stores). */
static inline __attribute__((always_inline)) void rmsnorm_backward_row(const float *xr, const float *gr, const float *w, float rstd,
                                                                        int c, float *dr, const int accumulate) {
    float lane[TK_RL] = {0};
    int j = 0;
    for (; j + TK_RL <= c; j += TK_RL)
        for (int i = 0; i < TK_RL; i++) {
            float dn = w ? gr[j + i] * w[j + i] : gr[j + i];
            lane[i] += dn * xr[j + i] * rstd;
        }
    float s = 0.0f;
    for (int i = 0; i < TK_RL; i++) s += lane[i];
    for (; j < c; j++) { float dn = w ? gr[j] * w[j] : gr[j]; s += dn * xr[j] * rstd; }
    float m = s / (float)c;
    for (j = 0; j < c; j++) {
        float dn = w ? gr[j] * w[j] : gr[j];
        TK_PUT(dr[j], rstd * (dn - xr[j] * rstd * m));
    }
}

TK_KERNEL(tk_rmsnorm_backward, (const float *x, const float *g, const float *w, const float *rstd_in, int c, float *dx, int accumulate, int row_begin, int row_end), (x, g, w, rstd_in, c, dx, accumulate, row_begin, row_end)) {
    for (int row = row_begin; row < row_end; row++) {
        const float *xr = x + (size_t)row * c, *gr = g + (size_t)row * c;
        float *dr = dx + (size_t)row * c;
        if (w) TK_ACCUMULATE_OR_WRITE(accumulate, rmsnorm_backward_row(xr, gr, w, rstd_in[row], c, dr, accumulate_));
        else TK_ACCUMULATE_OR_WRITE(accumulate, rmsnorm_backward_row(xr, gr, NULL, rstd_in[row], c, dr, accumulate_));
    }
}

TK_KERNEL(tk_norm_weight_grad, (const float *x, const float *g, const float *stats, int layernorm, int rows, int c, float *gw), (x, g, stats, layernorm, rows, c, gw)) {
    for (int row = 0; row < rows; row++) {
        const float *xr = x + (size_t)row * c, *gr = g + (size_t)row * c;
        if (layernorm) {
            float mean = stats[2 * row], rstd = stats[2 * row + 1];
            for (int j = 0; j < c; j++) gw[j] += gr[j] * ((xr[j] - mean) * rstd);
        } else {
            float rstd = stats[row];
            for (int j = 0; j < c; j++) gw[j] += gr[j] * (xr[j] * rstd);
        }
    }
}

TK_KERNEL(tk_add_column_sums, (const float *src, int rows, int cols, float *dst), (src, rows, cols, dst)) {
    /* Blocks of 64 columns accumulate over all rows in registers, then add once. */
    for (int c0 = 0; c0 < cols; c0 += 64) {
        int c1 = c0 + 64 < cols ? c0 + 64 : cols;
        float acc[64] = {0};
        for (int r = 0; r < rows; r++) {
            const float *row = src + (size_t)r * cols;
            for (int c = c0; c < c1; c++) acc[c - c0] += row[c];
        }
        for (int c = c0; c < c1; c++) dst[c] += acc[c - c0];
    }
}

/* Memory-bound, so the baseline (SSE2) vectorisation of the OR-reduction is enough. */
ptrdiff_t tk_first_nonfinite(const float *x, size_t n) {
    const uint32_t *u = (const uint32_t *)x;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        uint32_t any = 0;
        for (int k = 0; k < 64; k++) any |= (uint32_t)((u[i + k] & 0x7f800000u) == 0x7f800000u);
        if (any) break;
    }
    for (; i < n; i++)
        if ((u[i] & 0x7f800000u) == 0x7f800000u) return (ptrdiff_t)i;
    return -1;
}
