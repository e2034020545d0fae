/* Hot numeric kernels in C, compiled once per SIMD level (AVX-512, AVX2 + FMA, portable) and
 * dispatched at each call on the level in effect (tk_simd_level in the platform seam). The autodiff structure lives in Swift (TensorCore); these
 * functions only compute. Every buffer's shape is stated in its comment. */
#ifndef CKERNELS_H
#define CKERNELS_H

#include <stddef.h>

/* Attention problem description. Layouts (row-major):
 *   q, dq, out, dout: [B, Tq, H, D]   k, v, dk, dv: [B, tk_stride, KVH, D] (first Tk rows used)   lse, delta: [B, H, Tq]
 * Query head h reads KV head h / (H / KVH). Query row i sits at absolute position q_offset + i;
 * key j at position j. Key j is visible to query i iff (!causal || j <= p_i) and
 * (window <= 0 || |p_i - j| < window). A score is s = scale * q.k, then softcap * tanh(s / softcap) when
 * softcap > 0 (Gemma 2), then ALiBi adds -alibi[h] * |p_i - j|. With sinks, head h's softmax
 * denominator also holds exp(sinks[h]) (gpt-oss: a learned logit with no value); lse includes it.
 * With dropout > 0 (training), each weight P_ij is multiplied by mask_ij / (1 - dropout) before the
 * weighted sum of values (mask from dropout_seed, tk_math.h); lse is that of the weights before dropout. */
#include <stdint.h>

typedef struct {
    int B, Tq, Tk, H, KVH, D;
    int causal;
    int window;
    int q_offset;
    const float *alibi; /* [H] slopes, or NULL */
    float scale;
    int tile_q, tile_k; /* tiled kernel block sizes */
    int tk_stride;      /* rows between batches in k/v (>= Tk; a KV cache's capacity) */
    float softcap;      /* 0: none */
    const float *sinks; /* [H] logits, or NULL */
    float dropout;      /* probability of dropping an attention weight (training); 0: none */
    uint64_t dropout_seed; /* the mask of weight (b, h, query i, key j) is row ((b*H + h)*Tq + i), column j */
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
 * accumulates (+=) into dq, dk, dv. Bits of `clear` (1: dq, 2: dk, 4: dv) name new, unzeroed
 * buffers: each item zeroes its own slices of those first. Memory: O(tile) scratch per call. */
void tk_attention_backward_tiled(const tk_attention *p, const float *q, const float *k, const float *v,
                                 const float *dout, const float *lse, const float *delta,
                                 float *dq, float *dk, float *dv, int clear, int item_begin, int item_end);

/* Naive helpers: in-place masked softmax of score rows. scores: [rows, Tk] for one (b, h) pair
 * whose rows are query rows [0, Tq); also writes lse[Tq] (stride lse_stride) and, with a softcap
 * and capgrad non-NULL, 1 - tanh^2 of each capped score into capgrad [rows, Tk]. */
void tk_attention_masked_softmax(const tk_attention *p, int h, float *scores, float *capgrad, float *lse, int lse_stride,
                                 int row_begin, int row_end);

/* Naive helper: rows [row_begin, row_end) (width Tk, stride ld) of pair (b, h) times their dropout
 * mask / (1 - dropout): the weights in the forward, dP in the backward. */
void tk_attention_dropout_rows(const tk_attention *p, int b, int h, float *rows, int ld, int row_begin, int row_end);

/* dS = P * (dP - rowsum(dP * P)) * scale, in place in dp, for rows [row_begin, row_end) of width n. */
void tk_softmax_backward_rows(const float *p, float *dp, int n, float scale, int row_begin, int row_end);

/* Vectorisable exp (Cephes polynomial, ~1e-7 relative error); 0 below -87.3. */

/* MARK: single-token decoding (decode.c) */


/* Weight formats for matrix-vector products. */
enum { TK_W_F32 = 0, TK_W_BF16 = 1, TK_W_Q8 = 2 };

/* A [rows, cols] row-major weight matrix (HF nn.Linear layout) with an optional bias.
 * F32: float; BF16: uint16 (the high half of a float); Q8: int8 with one float scale per row
 * (w[r, c] ~ scales[r] * q[r, c], symmetric, |q| <= 127). */
typedef struct {
    int rows, cols, format;
    const void *data;
    const float *scales; /* Q8 only: [rows] */
    const float *bias;   /* [rows] or NULL */
} tk_matrix;

/* Round to bfloat16, nearest even (NaN stays NaN). */
void tk_to_bf16(const float *w, size_t n, uint16_t *out);
/* Per-row symmetric int8: scales[r] = max|w[r, :]| / 127, q = round(w / scale). Returns 0, or -1
 * (writing nothing) when a weight is NaN or infinite. */
int tk_quantize_q8(const float *w, int rows, int cols, int8_t *q, float *scales);

/* y[r] = W[r, :] . x + bias[r] for rows [row_begin, row_end); with accumulate, y[r] += that. */
void tk_gemv_rows(const tk_matrix *m, const float *x, float *y, int row_begin, int row_end, int accumulate);
/* The same for several matrices against one x (ys[i] for mats[i]), rows split over the pool; then
 * `activation` (TK_ACT_*) on each output row range by the thread that computed it. */
enum { TK_ACT_NONE = 0, TK_ACT_GELU_TANH = 1 };
void tk_gemv_parallel(const tk_matrix *mats, int count, const float *x, float *const *ys, int accumulate, int activation);
/* The same for `vectors` vectors at once (batched decoding): x is [vectors, cols] (every matrix has
 * the same cols) and ys[i] is [vectors, mats[i].rows]. Each weight block is read from memory once
 * for all vectors; every vector's result equals tk_gemv_parallel's bit for bit. */
void tk_gemv_batch(const tk_matrix *mats, int count, const float *x, float *const *ys, int vectors, int accumulate,
                   int activation);

/* A persistent pool of threads (the caller included) for decoding. Configure before first use. */
void tk_pool_configure(int threads);
typedef void (*tk_range_fn)(void *ctx, int begin, int end);
/* Runs fn over [0, n) in contiguous chunks that the threads take in turn; returns when all are done.
 * Not re-entrant: fn must not call tk_pool_for. */
void tk_pool_for(int n, tk_range_fn fn, void *ctx);

/* Rotary embedding in place on x [heads, d] with one position's tables (half = rotary dims / 2). */
void tk_rope_row(float *x, int heads, int d, const float *cos_row, const float *sin_row, int half, int interleaved);

/* One query position attending over a KV cache: q [H, D]; k, v [positions, KVH, D] (rows 0...position
 * valid); out [H, D]; scratch [H * (position + 1)]. Masking as tk_attention (window, ALiBi). */
typedef struct {
    int H, KVH, D;
    int position;
    int window;
    const float *alibi;
    float scale;
    float softcap;      /* 0: none */
    const float *sinks; /* [H] logits, or NULL */
} tk_decode_attention;
void tk_decode_attention_run(const tk_decode_attention *p, const float *q, const float *k, const float *v,
                             float *out, float *scratch);


/* Adam / AdamW over elements [begin, end) of one parameter (torch.optim.Adam semantics; the scalars
 * are formed by the caller in double and rounded once):
 *   d = g + l2·p; p = decoupled ? p·shrink : p; m = lerp(m, d, w1); v = b2·v + w2·d·d;
 *   p = p − step_size · m / (√v / bc2_sqrt + eps) */
typedef struct {
    float l2, shrink, w1, b2, w2, bc2_sqrt, eps, step_size;
    int decoupled;
} tk_adam_scalars;
void tk_adam_update(float *p, const float *g, float *m, float *v, long begin, long end, const tk_adam_scalars *s);

/* Elementwise activations over [begin, end) of flat arrays. Backward kernels add into dx when
 * accumulate is 1 and write it (a new, unzeroed gradient buffer) when it is 0. */
void tk_gelu_tanh_forward(const float *x, float *y, size_t begin, size_t end);
void tk_gelu_tanh_backward(const float *x, const float *dy, float *dx, int accumulate, size_t begin, size_t end);
void tk_silu_forward(const float *x, float *y, size_t begin, size_t end);
void tk_silu_backward(const float *x, const float *dy, float *dx, int accumulate, size_t begin, size_t end);
/* Rotary embedding of rows [row_begin, row_end) of x [B*T, H, D] at positions offset + row % t:
 * y = x rotated by the angles of cos/sin tables [positions, half] (dir 1) or by their negatives
 * (dir -1, the backward), over the first 2*half dims of each head; the rest pass through. Pairs
 * (i, i + half) or, with interleaved, (2i, 2i + 1). y += instead when accumulate is 1. */
void tk_rope_rows(const float *x, float *y, const float *cos_table, const float *sin_table, int t, int h, int d, int half,
                  int offset, int interleaved, float dir, int accumulate, int row_begin, int row_end);
/* y = silu(gate) * up; dgate/dup may be NULL. The backward adds into dgate and dup when accumulate
 * is nonzero and writes them otherwise (new gradient buffers need no zero-filling). */
void tk_swiglu_forward(const float *gate, const float *up, float *y, size_t begin, size_t end);
void tk_swiglu_backward(const float *gate, const float *up, const float *dy, float *dgate, float *dup,
                        int accumulate, size_t begin, size_t end);

/* Row kernels over rows [row_begin, row_end) of width n. */
void tk_softmax_rows(const float *x, float *y, int n, int row_begin, int row_end);
void tk_logsumexp_rows(const float *x, float *lse, int n, int row_begin, int row_end);
/* Cross-entropy: loss[r] = lse[r] - x[r, target[r]] (0 for ignored rows), lse[r] stored. */
void tk_cross_entropy_forward(const float *logits, const int *targets, int ignore_index, int n, float *lse,
                              float *loss, int row_begin, int row_end);
/* dlogits[r] += scale * (softmax(x[r]) - onehot(target[r])) for non-ignored rows; without accumulate,
 * dlogits[r] = that, and 0 for ignored rows. */
void tk_cross_entropy_backward(const float *logits, const int *targets, int ignore_index, int n, const float *lse,
                               float scale, float *dlogits, int accumulate, int row_begin, int row_end);

/* LayerNorm and RMSNorm (HF: x * rsqrt(mean(x^2) + eps) * w) over rows [row_begin, row_end) of width
 * c, for training and for the decode engine. LayerNorm stores (mean, rstd) per row in stats[2·row],
 * RMSNorm rstd[row]; w and b may be NULL; y may be x. Backward kernels add into dx when accumulate is
 * 1 and write it when it is 0. */
void tk_layernorm_forward(const float *x, const float *w, const float *b, float eps, int c, float *y,
                          float *stats, int row_begin, int row_end);
void tk_layernorm_backward(const float *x, const float *g, const float *w, const float *stats, int c,
                           float *dx, int accumulate, int row_begin, int row_end);
void tk_rmsnorm_forward(const float *x, const float *w, float eps, int c, float *y, float *rstd,
                        int row_begin, int row_end);
void tk_rmsnorm_backward(const float *x, const float *g, const float *w, const float *rstd, int c,
                         float *dx, int accumulate, int row_begin, int row_end);
/* gw[j] += sum_rows g[row, j] * normalised x[row, j] over rows of width c; stats as above
 * (layernorm = 1) or rstd (layernorm = 0). Kernels.addRowBlockSums runs blocks of rows in parallel. */
void tk_norm_weight_grad(const float *x, const float *g, const float *stats, int layernorm, int rows, int c,
                         float *gw);
/* dst[c] += sum_r src[r, c] (a bias gradient; blocks of rows in parallel as above). */
void tk_add_column_sums(const float *src, int rows, int cols, float *dst);

/* ---- byte streams (bytes.c) ---- */

/* CRC-32 (IEEE, reflected; zlib's crc32) of n bytes, continuing from crc (0 to start). Uses
 * carry-less multiplication (PCLMULQDQ) where the CPU has it, else slicing-by-8 tables. */
uint32_t tk_crc32(uint32_t crc, const void *data, size_t n);
/* The same value with the tables only (tests compare the two paths). */
uint32_t tk_crc32_portable(uint32_t crc, const void *data, size_t n);

/* Offset of the first byte that does not start a well-formed UTF-8 sequence (Unicode table 3-7:
 * overlong forms, surrogates, values above U+10FFFF and sequences cut off by the end are
 * ill-formed), or -1 when all n bytes are valid UTF-8. ASCII runs are checked 32 bytes a step. */
ptrdiff_t tk_utf8_invalid_offset(const uint8_t *p, size_t n);

/* Index of the first NaN or infinite value among n floats, or -1 when all are finite (blocks of
 * 64 are tested with one OR of exponent masks, so a clean tensor costs one pass at memory speed). */
ptrdiff_t tk_first_nonfinite(const float *x, size_t n);

/* MARK: dropout (dropout.c) */

/* y[i] = x[i] * (kept(i) ? scale : 0) (or += with accumulate) for i in [begin, end): element i is
 * column i % 1024 of mask row i / 1024 of `seed` (see tk_math.h); y may be x. The backward is the
 * same call on the gradient. */
void tk_dropout(const float *x, float *y, long begin, long end, uint64_t seed, float p, float scale, int accumulate);

/* out[c] = 1 where mask row `row` of `seed` keeps column col0 + c, else 0 (for tests and references). */
void tk_dropout_mask(uint64_t seed, uint64_t row, uint32_t col0, int n, float p, float *out);

#endif
