/* Hot numeric kernels in C, compiled once per instruction set (AVX-512, AVX2, baseline) with
 * runtime dispatch (clang target_clones). The autodiff structure lives in Swift (TensorCore); these
 * functions only compute. Every buffer's shape is stated in its comment. */
#ifndef CKERNELS_H
#define CKERNELS_H

#include <stddef.h>

/* Attention problem description. Layouts (row-major):
 *   q, dq, out, dout: [B, Tq, H, D]   k, v, dk, dv: [B, tk_stride, KVH, D] (first Tk rows used)   lse, delta: [B, H, Tq]
 * Query head h reads KV head h / (H / KVH). Query row i sits at absolute position q_offset + i;
 * key j at position j. Key j is visible to query i iff (!causal || j <= p_i) and
 * (window <= 0 || |p_i - j| < window). ALiBi adds -alibi[h] * |p_i - j| to the scaled score. */
typedef struct {
    int B, Tq, Tk, H, KVH, D;
    int causal;
    int window;
    int q_offset;
    const float *alibi; /* [H] slopes, or NULL */
    float scale;
    int tile_q, tile_k; /* tiled kernel block sizes */
    int tk_stride;      /* rows between batches in k/v (>= Tk; a KV cache's capacity) */
} tk_attention;

/* Number of independent forward work items (B * H * query blocks). */
int tk_attention_forward_items(const tk_attention *p);

/* FlashAttention-2 style forward for work items [item_begin, item_end): online softmax over key
 * tiles, skipping tiles that are entirely masked. Writes out and lse (natural log). */
void tk_attention_forward_tiled(const tk_attention *p, const float *q, const float *k, const float *v,
                                float *out, float *lse, int item_begin, int item_end);

/* delta[b,h,i] = sum_d dout[b,i,h,d] * out[b,i,h,d] for rows [row_begin, row_end) of B*Tq*H. */
void tk_attention_backward_delta(const tk_attention *p, const float *out, const float *dout, float *delta,
                                 int row_begin, int row_end);

/* Number of independent backward work items (B * KVH). */
int tk_attention_backward_items(const tk_attention *p);

/* Tiled backward for work items [item_begin, item_end): recomputes score tiles from lse,
 * accumulates (+=) into dq, dk, dv. Memory: O(tile) scratch per call. */
void tk_attention_backward_tiled(const tk_attention *p, const float *q, const float *k, const float *v,
                                 const float *dout, const float *lse, const float *delta,
                                 float *dq, float *dk, float *dv, int item_begin, int item_end);

/* Naive helpers: in-place masked softmax of score rows. scores: [rows, Tk] for one (b, h) pair
 * whose rows are query rows [0, Tq); also writes lse[Tq] (stride lse_stride). */
void tk_attention_masked_softmax(const tk_attention *p, int h, float *scores, float *lse, int lse_stride,
                                 int row_begin, int row_end);

/* dS = P * (dP - rowsum(dP * P)) * scale, in place in dp, for rows [row_begin, row_end) of width n. */
void tk_softmax_backward_rows(const float *p, float *dp, int n, float scale, int row_begin, int row_end);

/* Vectorisable exp (Cephes polynomial, ~1e-7 relative error); 0 below -87.3. */
void tk_exp(const float *x, float *y, size_t n);

#endif

/* Elementwise activations over [begin, end) of flat arrays. Backward kernels accumulate (+=). */
void tk_gelu_tanh_forward(const float *x, float *y, size_t begin, size_t end);
void tk_gelu_tanh_backward(const float *x, const float *dy, float *dx, size_t begin, size_t end);
void tk_silu_forward(const float *x, float *y, size_t begin, size_t end);
void tk_silu_backward(const float *x, const float *dy, float *dx, size_t begin, size_t end);
/* y = silu(gate) * up; dgate/dup may be NULL. */
void tk_swiglu_forward(const float *gate, const float *up, float *y, size_t begin, size_t end);
void tk_swiglu_backward(const float *gate, const float *up, const float *dy, float *dgate, float *dup,
                        size_t begin, size_t end);

/* Row kernels over rows [row_begin, row_end) of width n. */
void tk_softmax_rows(const float *x, float *y, int n, int row_begin, int row_end);
void tk_logsumexp_rows(const float *x, float *lse, int n, int row_begin, int row_end);
/* Cross-entropy: loss[r] = lse[r] - x[r, target[r]] (0 for ignored rows), lse[r] stored. */
void tk_cross_entropy_forward(const float *logits, const int *targets, int ignore_index, int n, float *lse,
                              float *loss, int row_begin, int row_end);
/* dlogits[r] += scale * (softmax(x[r]) - onehot(target[r])) for non-ignored rows. */
void tk_cross_entropy_backward(const float *logits, const int *targets, int ignore_index, int n, const float *lse,
                               float scale, float *dlogits, int row_begin, int row_end);
