#include "ckernels.h"
#include "tk_math.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Keys [*lo, *hi) that can be visible to any query in [pos0, pos1]. */
static inline void key_range(const tk_attention *p, int pos0, int pos1, int *lo, int *hi) {
    int l = 0, h = p->Tk;
    if (p->causal && pos1 + 1 < h) h = pos1 + 1;
    if (p->window > 0) {
        int wl = pos0 - p->window + 1;
        if (wl > l) l = wl;
        if (!p->causal) {
            int wh = pos1 + p->window;
            if (wh < h) h = wh;
        }
    }
    if (h < l) h = l;
    *lo = l;
    *hi = h;
}

static inline int div_up(int a, int b) { return (a + b - 1) / b; }

/* The dropout mask row of attention weights (b, h, query i): one row per query, a column per key. */
static inline uint32_t dropout_key(const tk_attention *p, int b, int h, int i) {
    return tk_dropout_key(p->dropout_seed, ((uint64_t)b * (uint64_t)p->H + (uint64_t)h) * (uint64_t)p->Tq + (uint64_t)i);
}

void tk_attention_dropout_rows(const tk_attention *p, int b, int h, float *rows, int ld, int row_begin, int row_end) {
    const uint32_t threshold = tk_dropout_threshold(p->dropout);
    const float scale = 1.0f / (1.0f - p->dropout);
    for (int i = row_begin; i < row_end; i++) {
        float *r = rows + (size_t)i * ld;
        tk_dropout_row(r, r, p->Tk, dropout_key(p, b, h, i), 0, threshold, scale, 0);
    }
}

/* Forward work items: (batch, head, segment of query blocks). A segment transposes its keys once
 * and reuses them for all its query blocks; heads are cut into segments only when there are too
 * few (batch, head) pairs to keep the cores busy. */
static inline int forward_segments(const tk_attention *p) {
    int nqb = div_up(p->Tq, p->tile_q), bh = p->B * p->H;
    int seg = bh >= 16 ? 1 : div_up(16, bh > 0 ? bh : 1);
    return seg < nqb ? seg : nqb;
}

int tk_attention_forward_items(const tk_attention *p) {
    return p->B * p->H * forward_segments(p);
}

int tk_attention_backward_items(const tk_attention *p) { return p->B * p->KVH; }

/* 16 floats as one vector (GCC/clang vector extension: AVX-512 registers in the x86-64-v4 clone,
 * pairs or quadruples of narrower registers in the others). Unaligned, may alias float. */
typedef float tk_v16 __attribute__((vector_size(64), aligned(4), may_alias));

/* Macros, not functions: a helper taking or returning a vector would be compiled for the default
 * target outside the clones (and change the calling convention). */
#define v16_load(p) (*(const tk_v16 *)(p))
#define v16_store(p, v) (*(tk_v16 *)(p) = (v))

/* Register-blocked micro-kernel: C[m][n] (= or +=) alpha * sum_k A(m, k) * B[k][n] for m < M, n < N,
 * with A(m, k) = A[m * am + k * ak] (any strides, so A or its transpose) and B row-major (ldb).
 * A block of R rows x (16 * NV) columns keeps its R * NV vector accumulators in registers across
 * the k loop; the epilogue is vector stores (a scalar epilogue cost ~15 % of the attention
 * backward). The block shape follows the SIMD level's register file: AVX-512 (32 zmm) 8 x 32 = 16
 * accumulators; AVX2 (16 ymm, a 16-float vector being two of them) 6 x 16 = 12 accumulators, two
 * for B and a broadcast; the portable build (16 xmm on x86-64 or 32 NEON q registers, four per
 * vector) 2 x 16. The 8 x 32 shape compiled for AVX2 needed 32 accumulators and spilled. */
#define TK_MK_BLOCK(R, NV)                                                                              \
    do {                                                                                                \
        tk_v16 c[R][NV];                                                                                \
        for (int r = 0; r < R; r++)                                                                     \
            for (int v = 0; v < NV; v++) c[r][v] = (tk_v16){0};                                         \
        const float *a = A + (long)m0 * am;                                                             \
        for (int k = 0; k < K; k++) {                                                                   \
            const float *b = B + (long)k * ldb + n0;                                                    \
            tk_v16 bv[NV];                                                                              \
            for (int v = 0; v < NV; v++) bv[v] = v16_load(b + 16 * v);                                  \
            for (int r = 0; r < R; r++) {                                                               \
                float av = a[(long)r * am + (long)k * ak];                                              \
                for (int v = 0; v < NV; v++) c[r][v] += av * bv[v];                                     \
            }                                                                                           \
        }                                                                                               \
        for (int r = 0; r < R; r++) {                                                                   \
            float *o = C + (long)(m0 + r) * ldc + n0;                                                   \
            for (int v = 0; v < NV; v++) {                                                              \
                if (accumulate) v16_store(o + 16 * v, v16_load(o + 16 * v) + alpha * c[r][v]);          \
                else v16_store(o + 16 * v, alpha * c[r][v]);                                            \
            }                                                                                           \
        }                                                                                               \
    } while (0)

static inline __attribute__((always_inline)) void mk_gemm(const int lvl, int M, int N, int K, float alpha, const float *restrict A,
                                                          long am, long ak, const float *restrict B, long ldb, float *restrict C,
                                                          long ldc, int accumulate) {
    int n0 = 0;
    if (lvl == TK_SIMD_AVX512) {
        for (; n0 + 32 <= N; n0 += 32) {
            int m0 = 0;
            for (; m0 + 8 <= M; m0 += 8) TK_MK_BLOCK(8, 2);
            for (; m0 + 4 <= M; m0 += 4) TK_MK_BLOCK(4, 2);
            for (; m0 < M; m0++) TK_MK_BLOCK(1, 2);
        }
    } else if (lvl == TK_SIMD_AVX2) {
        for (; n0 + 16 <= N; n0 += 16) {
            int m0 = 0;
            for (; m0 + 6 <= M; m0 += 6) TK_MK_BLOCK(6, 1);
            for (; m0 + 4 <= M; m0 += 4) TK_MK_BLOCK(4, 1);
            for (; m0 + 2 <= M; m0 += 2) TK_MK_BLOCK(2, 1);
            for (; m0 < M; m0++) TK_MK_BLOCK(1, 1);
        }
    } else {
        for (; n0 + 16 <= N; n0 += 16) {
            int m0 = 0;
            for (; m0 + 2 <= M; m0 += 2) TK_MK_BLOCK(2, 1);
            for (; m0 < M; m0++) TK_MK_BLOCK(1, 1);
        }
    }
    if (n0 == N) return;
    /* Column tail (narrower than one block): one row at a time. */
    int nb = N - n0;
    for (int m0 = 0; m0 < M; m0++) {
        float c0[32] = {0};
        const float *a = A + (long)m0 * am;
        for (int k = 0; k < K; k++) {
            const float *b = B + (long)k * ldb + n0;
            float a0 = a[k * ak];
            for (int j = 0; j < nb; j++) c0[j] += a0 * b[j];
        }
        float *o0 = C + (long)m0 * ldc + n0;
        if (accumulate) { for (int j = 0; j < nb; j++) o0[j] += alpha * c0[j]; }
        else { for (int j = 0; j < nb; j++) o0[j] = alpha * c0[j]; }
    }
}

/* S[r, c] = scale * dot(A[r], B[c]) for r < nr, c < nc, where A rows have stride lda and
 * Bt is B transposed: [D][ldb]. S: [nr][lds]. */
static inline __attribute__((always_inline)) void scores_tile(const int lvl, const float *a, int lda, const float *bt, int ldb, int nr, int nc, int D,
                               float scale, float *s, int lds) {
    mk_gemm(lvl, nr, nc, D, scale, a, lda, 1, bt, ldb, s, lds, 0);
}

/* Bt[d][c] = B[c][d] for a tile of nc rows (stride ldb_rows) and D columns. Bt: [D][ldt]. */
static inline __attribute__((always_inline)) void transpose_tile(const float *b, int ldb_rows, int nc, int D, float *bt, int ldt) {
    /* Contiguous stores, strided loads (the tile's rows stay in L1); the other order stored with a
     * stride of ldt floats and was the single hottest line of the backward. */
    for (int d = 0; d < D; d++) {
        float *out = bt + (size_t)d * ldt;
#pragma clang loop vectorize(disable) /* gathers, slower than scalar loads here */
        for (int c = 0; c < nc; c++) out[c] = b[(size_t)c * ldb_rows + d];
    }
}

/* C[r][:] += sum_c A[r][c] * B[c][:], A: [nr][lda], B rows stride ldb, C rows stride ldc, width D. */
static inline __attribute__((always_inline)) void acc_ab(const int lvl, const float *a, int lda, const float *b, int ldb, int nr, int nc, int D, float *c, int ldc) {
    mk_gemm(lvl, nr, D, nc, 1.0f, a, lda, 1, b, ldb, c, ldc, 1);
}

/* C[c][:] += sum_r A[r][c] * B[r][:] (A transposed), A: [nr][lda], B rows stride ldb, C: [nc][ldc]. */
static inline __attribute__((always_inline)) void acc_atb(const int lvl, const float *a, int lda, const float *b, int ldb, int nr, int nc, int D, float *c, int ldc) {
    mk_gemm(lvl, nc, D, nr, 1.0f, a, 1, lda, b, ldb, c, ldc, 1);
}

/* Applies ALiBi and the mask to a score tile: rows are queries [i0, i0+nr), columns keys [j0, j0+nc).
 * Masked entries become -INFINITY. A row's visible keys form one interval (causal: j <= pos;
 * window: |pos - j| < window), so each row is two fills and one vectorisable ALiBi loop. */
static inline __attribute__((always_inline)) void bias_and_mask(const tk_attention *p, int h, int i0, int j0, int nr,
                                                                int nc, float *s, int lds) {
    float slope = p->alibi ? p->alibi[h] : 0.0f;
    for (int r = 0; r < nr; r++) {
        int pos = p->q_offset + i0 + r;
        float *sr = s + (size_t)r * lds;
        long first = 0, last = (long)nc - 1; /* visible columns, inclusive */
        if (p->causal && (long)pos - j0 < last) last = (long)pos - j0;
        if (p->window > 0) {
            long wl = (long)pos - p->window + 1 - j0, wh = (long)pos + p->window - 1 - j0;
            if (wl > first) first = wl;
            if (wh < last) last = wh;
        }
        if (first > last) { first = nc; last = nc - 1; } /* nothing visible */
        for (long c = 0; c < first && c < nc; c++) sr[c] = -INFINITY;
        for (long c = last + 1; c < nc; c++) sr[c] = -INFINITY;
        if (slope != 0.0f)
            for (long c = first; c <= last; c++) {
                int d = pos - (j0 + (int)c);
                sr[c] -= slope * (float)(d < 0 ? -d : d);
            }
    }
}

/* Soft-capping of a score tile in place, s = cap * tanh(s / cap) (before the mask and ALiBi); with
 * grad, also d(capped)/d(s) = 1 - tanh^2 per entry (same layout). */
static inline __attribute__((always_inline)) void softcap_tile(const tk_attention *p, int nr, int nc, float *s, int lds,
                                                               float *grad) {
    const float cap = p->softcap, inv = 1.0f / p->softcap;
    for (int r = 0; r < nr; r++) {
        float *sr = s + (size_t)r * lds, *gr = grad ? grad + (size_t)r * lds : NULL;
        for (int c = 0; c < nc; c++) {
            float t = tanhf(sr[c] * inv);
            sr[c] = cap * t;
            if (gr) gr[c] = 1.0f - t * t;
        }
    }
}

/* Causal tiles that cross the diagonal are computed in strips of TK_STRIP query rows, each only over
 * the key columns its last row can see (rounded up to the micro-kernel's column block; the mask
 * fills the rest of those), instead of whole: at T = 256 with 64-wide tiles, 4 of the 10 tiles
 * computed cross the diagonal, and strips do 62.5 % of their work. */
#define TK_STRIP 16

/* Columns [0, n) of the key tile at j0 (nc wide) that query row i (and the rows before it) can see
 * under the causal mask, rounded up to whole column blocks, at most nc; 0 when it sees none. */
static inline __attribute__((always_inline)) int causal_columns(const int lvl, const tk_attention *p, int i, int j0, int nc) {
    const long block = lvl == TK_SIMD_AVX512 ? 32 : 16;
    long n = (long)p->q_offset + i - j0 + 1;
    if (n <= 0) return 0;
    n = (n + block - 1) / block * block;
    return n < nc ? (int)n : nc;
}

/* Rows per strip for the tile of query rows [i0, i0 + nr) and keys [j0, j0 + nc): TK_STRIP when the
 * causal mask hides whole column blocks from the first strip, nr (the whole tile) otherwise. */
static inline __attribute__((always_inline)) int strip_rows(const int lvl, const tk_attention *p, int i0, int j0, int nr, int nc) {
    if (!p->causal || nr <= TK_STRIP) return nr;
    return causal_columns(lvl, p, i0 + TK_STRIP - 1, j0, nc) < nc ? TK_STRIP : nr;
}

/* Folds head h's sink logit into a finished row's running max m and sum l (exp relative to m). */
static inline void add_sink(const tk_attention *p, int h, float *m, float *l, float *rescale) {
    float sink = p->sinks[h], mx = TK_MAX_NAN(*m, sink);
    float a = *m == -INFINITY ? 0.0f : expf(*m - mx);
    *l = *l * a + expf(sink - mx);
    *m = mx;
    *rescale = a;
}

TK_KERNEL(tk_attention_forward_tiled, (const tk_attention *p, const float *q, const float *k, const float *v, float *out, float *lse, int item_begin, int item_end), (p, q, k, v, out, lse, item_begin, item_end)) {
    const int D = p->D, H = p->H, KVH = p->KVH, BR = p->tile_q, BC = p->tile_k;
    const int nqb = div_up(p->Tq, BR), segs = forward_segments(p);
    if (segs <= 0) return; /* no queries */
    const int per_seg = div_up(nqb, segs);
    const int ldq = H * D, ldk = KVH * D;
    const uint32_t threshold = tk_dropout_threshold(p->dropout);
    const float keep_scale = p->dropout > 0.0f ? 1.0f / (1.0f - p->dropout) : 1.0f;
    const int ldt = p->Tk + BC; /* transposed keys of one segment: [D][ldt] */
    float *s = malloc(sizeof(float) * (size_t)BR * BC);
    float *kt = malloc(sizeof(float) * (size_t)D * ldt);
    float *acc = malloc(sizeof(float) * (size_t)BR * D);
    float *m = malloc(sizeof(float) * BR), *l = malloc(sizeof(float) * BR);
    for (int item = item_begin; item < item_end; item++) {
        int seg = item % segs, bh = item / segs, h = bh % H, b = bh / H;
        int kvh = h / (H / KVH);
        int qb_lo = seg * per_seg, qb_hi = qb_lo + per_seg < nqb ? qb_lo + per_seg : nqb;
        if (qb_lo >= qb_hi) continue;
        const float *kb = k + (size_t)b * p->tk_stride * ldk + (size_t)kvh * D;
        const float *vb = v + (size_t)b * p->tk_stride * ldk + (size_t)kvh * D;
        /* Keys any query of the segment can see, transposed once. */
        int last_q = qb_hi * BR < p->Tq ? qb_hi * BR - 1 : p->Tq - 1;
        int seg_lo, seg_hi;
        key_range(p, p->q_offset + qb_lo * BR, p->q_offset + last_q, &seg_lo, &seg_hi);
        int kt0 = (seg_lo / BC) * BC;
        if (seg_hi > kt0) transpose_tile(kb + (size_t)kt0 * ldk, ldk, seg_hi - kt0, D, kt, ldt);
        for (int qb = qb_lo; qb < qb_hi; qb++) {
            int i0 = qb * BR, nr = p->Tq - i0 < BR ? p->Tq - i0 : BR;
            const float *qb_ptr = q + ((size_t)b * p->Tq + i0) * ldq + (size_t)h * D;
            for (int r = 0; r < nr; r++) { m[r] = -INFINITY; l[r] = 0.0f; }
            memset(acc, 0, sizeof(float) * (size_t)nr * D);
            int lo, hi;
            key_range(p, p->q_offset + i0, p->q_offset + i0 + nr - 1, &lo, &hi);
            for (int j0 = (lo / BC) * BC; j0 < hi; j0 += BC) {
                int nc = hi - j0 < BC ? hi - j0 : BC;
                /* A tile across the causal diagonal goes in strips of rows, each over the columns it can see. */
                int strip = strip_rows(tk_lvl, p, i0, j0, nr, nc);
                for (int r0 = 0; r0 < nr; r0 += strip) {
                    int rn = nr - r0 < strip ? nr - r0 : strip;
                    int cn = strip < nr ? causal_columns(tk_lvl, p, i0 + r0 + rn - 1, j0, nc) : nc;
                    if (cn == 0) continue; /* these rows see no key of this tile */
                    float *st = s + (size_t)r0 * BC;
                    scores_tile(tk_lvl, qb_ptr + (size_t)r0 * ldq, ldq, kt + (j0 - kt0), ldt, rn, cn, D, p->scale, st, BC);
                    if (p->softcap > 0.0f) softcap_tile(p, rn, cn, st, BC, NULL);
                    bias_and_mask(p, h, i0 + r0, j0, rn, cn, st, BC);
                    for (int r = r0; r < r0 + rn; r++) {
                        float *sr = s + (size_t)r * BC;
                        float mx = tk_row_max(sr, cn);
                        mx = TK_MAX_NAN(m[r], mx);
                        if (mx == -INFINITY) {  /* whole row masked in this tile and before */
                            for (int c = 0; c < cn; c++) sr[c] = 0.0f;
                            continue;
                        }
                        float alpha = m[r] == -INFINITY ? 0.0f : tk_expf1(m[r] - mx);
                        float sum = tk_row_sum_exp(sr, mx, cn, sr); /* exp(-inf - mx) = 0 */
                        l[r] = alpha * l[r] + sum;
                        m[r] = mx;
                        float *ar = acc + (size_t)r * D;
                        if (alpha != 1.0f) for (int d = 0; d < D; d++) ar[d] *= alpha;
                        /* Dropout after the row sum: the softmax normalises the kept and the dropped weights. */
                        if (p->dropout > 0.0f) tk_dropout_row(sr, sr, cn, dropout_key(p, b, h, i0 + r), (uint32_t)j0, threshold, 1.0f, 0);
                    }
                    acc_ab(tk_lvl, st, BC, vb + (size_t)j0 * ldk, ldk, rn, cn, D, acc + (size_t)r0 * D, D);
                }
            }
            for (int r = 0; r < nr; r++) {
                float *o = out + ((size_t)b * p->Tq + i0 + r) * ldq + (size_t)h * D;
                float rescale = 1.0f;
                if (p->sinks) add_sink(p, h, &m[r], &l[r], &rescale);
                float inv = l[r] == 0.0f ? 0.0f : rescale / l[r] * keep_scale;  /* NaN stays NaN */
                const float *ar = acc + (size_t)r * D;
                for (int d = 0; d < D; d++) o[d] = ar[d] * inv;
                lse[((size_t)b * H + h) * p->Tq + i0 + r] = l[r] == 0.0f ? -INFINITY : m[r] + logf(l[r]);
            }
        }
    }
    free(s); free(kt); free(acc); free(m); free(l);
}

TK_KERNEL(tk_attention_backward_delta, (const tk_attention *p, const float *out, const float *dout, float *delta, int row_begin, int row_end), (p, out, dout, delta, row_begin, row_end)) {
    /* rows enumerate (b, i, h) in memory order of [B, Tq, H]. */
    const int D = p->D, H = p->H;
    for (int row = row_begin; row < row_end; row++) {
        int h = row % H, bi = row / H, i = bi % p->Tq, b = bi / p->Tq;
        const float *o = out + (size_t)row * D, *g = dout + (size_t)row * D;
        delta[((size_t)b * H + h) * p->Tq + i] = tk_row_dot(o, g, D);
    }
}

TK_KERNEL(tk_attention_backward_tiled, (const tk_attention *p, const float *q, const float *k, const float *v, const float *dout, const float *lse, const float *delta, float *dq, float *dk, float *dv, int clear, int item_begin, int item_end), (p, q, k, v, dout, lse, delta, dq, dk, dv, clear, item_begin, item_end)) {
    const int D = p->D, H = p->H, KVH = p->KVH, BR = p->tile_q, BC = p->tile_k;
    const int group = H / KVH;
    const int ldq = H * D, ldk = KVH * D;
    float *s = malloc(sizeof(float) * (size_t)BR * BC);   /* P tile */
    float *dp = malloc(sizeof(float) * (size_t)BR * BC);  /* dP, then dS */
    float *kt = malloc(sizeof(float) * (size_t)D * BC);
    float *vt = malloc(sizeof(float) * (size_t)D * BC);
    float *dkt = malloc(sizeof(float) * (size_t)BC * D);
    float *dvt = malloc(sizeof(float) * (size_t)BC * D);
    float *cg = p->softcap > 0.0f ? malloc(sizeof(float) * (size_t)BR * BC) : NULL; /* 1 - tanh^2 */
    float *dm = p->dropout > 0.0f ? malloc(sizeof(float) * (size_t)BR * BC) : NULL; /* mask / (1 - dropout) */
    const uint32_t threshold = tk_dropout_threshold(p->dropout);
    const float keep_scale = p->dropout > 0.0f ? 1.0f / (1.0f - p->dropout) : 1.0f;
    for (int item = item_begin; item < item_end; item++) {
        int kvh = item % KVH, b = item / KVH;
        const float *kb = k + (size_t)b * p->tk_stride * ldk + (size_t)kvh * D;
        const float *vb = v + (size_t)b * p->tk_stride * ldk + (size_t)kvh * D;
        /* New gradient buffers are cleared here, each item its own slices (in parallel, and still in
         * cache when the tiles add into them), instead of zero-filled whole beforehand. */
        if (clear & 1)
            for (int i = 0; i < p->Tq; i++)
                memset(dq + ((size_t)b * p->Tq + i) * ldq + (size_t)kvh * group * D, 0, sizeof(float) * (size_t)group * D);
        for (int j = 0; j < p->tk_stride && (clear & 6); j++) {
            size_t o = ((size_t)b * p->tk_stride + j) * ldk + (size_t)kvh * D;
            if (clear & 2) memset(dk + o, 0, sizeof(float) * (size_t)D);
            if (clear & 4) memset(dv + o, 0, sizeof(float) * (size_t)D);
        }
        for (int j0 = 0; j0 < p->Tk; j0 += BC) {
            int nc = p->Tk - j0 < BC ? p->Tk - j0 : BC;
            transpose_tile(kb + (size_t)j0 * ldk, ldk, nc, D, kt, BC);
            transpose_tile(vb + (size_t)j0 * ldk, ldk, nc, D, vt, BC);
            memset(dkt, 0, sizeof(float) * (size_t)nc * D);
            memset(dvt, 0, sizeof(float) * (size_t)nc * D);
            /* Query rows that can see keys [j0, j0 + nc): positions in [j0 - (window-1), ...]. */
            int qlo = 0, qhi = p->Tq;
            if (p->causal) {
                int first = j0 - p->q_offset;
                if (first > qlo) qlo = first;
            }
            if (p->window > 0) {
                int last = j0 + nc - 1 + p->window - 1 - p->q_offset;
                if (last + 1 < qhi) qhi = last + 1;
                if (!p->causal) {
                    int first = j0 - p->window + 1 - p->q_offset;
                    if (first > qlo) qlo = first;
                }
            }
            if (qhi <= qlo) continue;
            for (int hh = 0; hh < group; hh++) {
                int h = kvh * group + hh;
                const float *lse_h = lse + ((size_t)b * H + h) * p->Tq;
                const float *delta_h = delta + ((size_t)b * H + h) * p->Tq;
                for (int i0 = (qlo / BR) * BR; i0 < qhi; i0 += BR) {
                    int nr = qhi - i0 < BR ? qhi - i0 : BR;
                    const float *qi = q + ((size_t)b * p->Tq + i0) * ldq + (size_t)h * D;
                    const float *doi = dout + ((size_t)b * p->Tq + i0) * ldq + (size_t)h * D;
                    float *dqi = dq + ((size_t)b * p->Tq + i0) * ldq + (size_t)h * D;
                    /* A tile across the causal diagonal goes in strips of query rows, each over the
                     * key columns it can see; the columns past them are zero in P and dS. */
                    int strip = strip_rows(tk_lvl, p, i0, j0, nr, nc);
                    for (int r0 = 0; r0 < nr; r0 += strip) {
                        int rn = nr - r0 < strip ? nr - r0 : strip;
                        int cn = strip < nr ? causal_columns(tk_lvl, p, i0 + r0 + rn - 1, j0, nc) : nc;
                        float *st = s + (size_t)r0 * BC, *dpt = dp + (size_t)r0 * BC;
                        for (int r = r0; r < r0 + rn && cn < nc; r++) {
                            memset(s + (size_t)r * BC + cn, 0, sizeof(float) * (size_t)(nc - cn));
                            memset(dp + (size_t)r * BC + cn, 0, sizeof(float) * (size_t)(nc - cn));
                        }
                        if (cn == 0) continue;
                        /* P = exp(S - lse) */
                        scores_tile(tk_lvl, qi + (size_t)r0 * ldq, ldq, kt, BC, rn, cn, D, p->scale, st, BC);
                        if (cg) softcap_tile(p, rn, cn, st, BC, cg + (size_t)r0 * BC);
                        bias_and_mask(p, h, i0 + r0, j0, rn, cn, st, BC);
                        for (int r = r0; r < r0 + rn; r++) {
                            float *sr = s + (size_t)r * BC;
                            float L = lse_h[i0 + r];
                            for (int c = 0; c < cn; c++) sr[c] = sr[c] == -INFINITY ? 0.0f : tk_expf1(sr[c] - L);
                        }
                        /* dP = dO V^T (with dropout, times the mask: the weights V met were Z = P * mask) */
                        scores_tile(tk_lvl, doi + (size_t)r0 * ldq, ldq, vt, BC, rn, cn, D, 1.0f, dpt, BC);
                        if (dm)
                            for (int r = r0; r < r0 + rn; r++) {
                                float *mr = dm + (size_t)r * BC;
                                tk_dropout_factors(mr, cn, dropout_key(p, b, h, i0 + r), (uint32_t)j0, threshold, keep_scale);
                                float *dpr = dp + (size_t)r * BC;
                                for (int c = 0; c < cn; c++) dpr[c] *= mr[c];
                            }
                        /* dS = P * (dP - delta), delta = rowsum(dO * O) = rowsum(P * dP) */
                        for (int r = r0; r < r0 + rn; r++) {
                            float *dpr = dp + (size_t)r * BC;
                            const float *pr = s + (size_t)r * BC;
                            float dl = delta_h[i0 + r];
                            for (int c = 0; c < cn; c++) dpr[c] = pr[c] * (dpr[c] - dl) * p->scale;
                            if (cg) {
                                const float *gr = cg + (size_t)r * BC;
                                for (int c = 0; c < cn; c++) dpr[c] *= gr[c];
                            }
                        }
                        /* Z = P times the mask, for dV */
                        if (dm)
                            for (int r = r0; r < r0 + rn; r++) {
                                float *sr = s + (size_t)r * BC;
                                const float *mr = dm + (size_t)r * BC;
                                for (int c = 0; c < cn; c++) sr[c] *= mr[c];
                            }
                        /* dQ += scale * dS K (scale folded into dS) */
                        acc_ab(tk_lvl, dpt, BC, kb + (size_t)j0 * ldk, ldk, rn, cn, D, dqi + (size_t)r0 * ldq, ldq);
                    }
                    /* dV += Z^T dO ; dK += scale * dS^T Q. Striped: in strips of key columns, each over
                     * the query rows that can see them (the rows before see none: zero in Z and dS). */
                    int kstrip = strip < nr ? TK_STRIP : nc;
                    for (int c0 = 0; c0 < nc; c0 += kstrip) {
                        int kn = nc - c0 < kstrip ? nc - c0 : kstrip;
                        int rs = 0; /* the first row that sees key j0 + c0 */
                        if (strip < nr && j0 + c0 - i0 - p->q_offset > 0) rs = j0 + c0 - i0 - p->q_offset;
                        if (rs >= nr) break;
                        acc_atb(tk_lvl, s + (size_t)rs * BC + c0, BC, doi + (size_t)rs * ldq, ldq, nr - rs, kn, D,
                                dvt + (size_t)c0 * D, D);
                        acc_atb(tk_lvl, dp + (size_t)rs * BC + c0, BC, qi + (size_t)rs * ldq, ldq, nr - rs, kn, D,
                                dkt + (size_t)c0 * D, D);
                    }
                }
            }
            for (int c = 0; c < nc; c++) {
                float *dkr = dk + ((size_t)b * p->tk_stride + j0 + c) * ldk + (size_t)kvh * D;
                float *dvr = dv + ((size_t)b * p->tk_stride + j0 + c) * ldk + (size_t)kvh * D;
                const float *sk = dkt + (size_t)c * D, *sv = dvt + (size_t)c * D;
                for (int d = 0; d < D; d++) { dkr[d] += sk[d]; dvr[d] += sv[d]; }
            }
        }
    }
    free(s); free(dp); free(kt); free(vt); free(dkt); free(dvt); free(cg); free(dm);
}

TK_KERNEL(tk_attention_masked_softmax, (const tk_attention *p, int h, float *scores, float *capgrad, float *lse, int lse_stride, int row_begin, int row_end), (p, h, scores, capgrad, lse, lse_stride, row_begin, row_end)) {
    const int n = p->Tk;
    for (int i = row_begin; i < row_end; i++) {
        float *sr = scores + (size_t)i * n;
        for (int c = 0; c < n; c++) sr[c] *= p->scale;
        if (p->softcap > 0.0f) softcap_tile(p, 1, n, sr, n, capgrad ? capgrad + (size_t)i * n : NULL);
        bias_and_mask(p, h, i, 0, 1, n, sr, n);
        float mx = p->sinks ? p->sinks[h] : -INFINITY;
        for (int c = 0; c < n; c++) mx = TK_MAX_NAN(sr[c], mx);
        if (mx == -INFINITY) {
            for (int c = 0; c < n; c++) sr[c] = 0.0f;
            lse[(size_t)i * lse_stride] = -INFINITY;
            continue;
        }
        float sum = p->sinks ? expf(p->sinks[h] - mx) : 0.0f;
        for (int c = 0; c < n; c++) {
            float e = sr[c] == -INFINITY ? 0.0f : tk_expf1(sr[c] - mx);
            sr[c] = e;
            sum += e;
        }
        float inv = 1.0f / sum;
        for (int c = 0; c < n; c++) sr[c] *= inv;
        lse[(size_t)i * lse_stride] = mx + logf(sum);
    }
}

TK_KERNEL(tk_softmax_backward_rows, (const float *p, float *dp, int n, float scale, int row_begin, int row_end), (p, dp, n, scale, row_begin, row_end)) {
    for (int i = row_begin; i < row_end; i++) {
        const float *pr = p + (size_t)i * n;
        float *dr = dp + (size_t)i * n;
        float s = 0.0f;
        for (int c = 0; c < n; c++) s += pr[c] * dr[c];
        for (int c = 0; c < n; c++) dr[c] = pr[c] * (dr[c] - s) * scale;
    }
}
