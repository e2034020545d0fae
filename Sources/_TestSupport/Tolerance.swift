/// Every numerical bound the tests compare with, stated once, each with its derivation beside it.
///
/// Rounding model (Higham, *Accuracy and Stability of Numerical Algorithms*, ch. 2–3):
/// - fp32 unit roundoff u = 2⁻²⁴ ≈ 5.96e-8 (each rounding errs by at most u relative, half an ulp);
///   Double: u₆₄ = 2⁻⁵³ ≈ 1.11e-16.
/// - A sum or dot product of n terms errs by at most γ_n·Σ|terms|, γ_n = n·u / (1 − n·u) (`gamma`),
///   whatever the order. That worst case needs every rounding to go the same way; rounding errors of
///   independent operands behave like a random walk, so the realistic error is about √n·u·Σ|terms|
///   (`walk`, Higham's rule of thumb; smaller still when partial sums cancel).
/// - The suite runs at TOOLKIT_SIMD=portable|avx2|avx512 on AVX2-only (Zen 3) and AVX-512 (Xeon,
///   Zen 4) CPUs: the C kernels' vector widths and OpenBLAS's kernel (SandyBridge/Haswell/SkylakeX)
///   change the summation order, so a comparison between two fp32 computations (ours and PyTorch's,
///   or two of our kernels) sees two independent walks: √2 times one of them.
///
/// Each bound below says what is computed, the magnitudes involved, the estimate (worst case and/or
/// walk, with measured values where the fixture generators recorded them) and the margin of the
/// chosen constant over it. Where a bound is much looser than rounding needs, it says which fault
/// it still catches. Sizes come from the fixtures' generators (`scripts/fixtures`) and
/// `Tests/Fixtures/README.md`. Statistical checks (kσ) are not rounding bounds: see `Statistics`.
public enum Tolerance {
    // MARK: - Rounding model

    /// fp32 unit roundoff u = 2⁻²⁴.
    public static let u: Double = 0x1p-24
    /// Double unit roundoff 2⁻⁵³.
    public static let uDouble: Double = 0x1p-53

    /// Higham's γ_n = n·u / (1 − n·u): the worst-case relative error of an n-term fp32 sum or dot
    /// product, relative to Σ|terms|.
    public static func gamma(_ n: Int, unit: Double = Tolerance.u) -> Double {
        let nu = Double(n) * unit
        return nu / (1 - nu)
    }

    /// The rounding-walk estimate √n·u of an n-term fp32 sum or dot product, relative to Σ|terms|.
    public static func walk(_ n: Int, unit: Double = Tolerance.u) -> Double { Double(n).squareRoot() * unit }

    // MARK: - Double arithmetic

    /// Two Double computations of the same quantity (means and sample deviations of a few losses,
    /// learning-rate multipliers, Muon's lr scale 0.2·√n, a global norm of 13, chart axes).
    ///
    /// Values are ≤ ~13 in magnitude and come from ≤ ~20 Double operations (sums of ≤ 6 terms, a
    /// square root, cos, a division) on both sides: γ₂₀(u₆₄)·13 ≈ 2.9e-14 worst case (libm's cos and
    /// sqrt are within 1 ulp). 1e-12 is 35× that worst case. A wrong formula (population instead of
    /// sample deviation, an off-by-one step) is off by ≥ 1e-3.
    public static let double: Double = 1e-12

    // MARK: - A few fp32 roundings

    /// A value of magnitude ≲ 1 that went through at most ~8 fp32 roundings, or the same fp32
    /// computation done twice (same kernel, same order: then exactly 0, or a Double ulp).
    ///
    /// γ₈ = 4.8e-7 (worst case, |x| ≤ 1), walk √8·u = 1.7e-7: 1e-6 is 2× the worst case and 6× the
    /// walk. Sites: ALiBi slopes vs 8-digit decimals (Float rounding 0.5 ulp ≤ 3e-8 plus the
    /// decimals' truncation ≤ 5e-9); clipped gradients 3/13, 4/13 and their norm 1 (the clip
    /// factor 1/(13 + 1e-6) shifts them by 7.7e-8, plus ≤ 3 roundings); DPO rewards and the
    /// starting reward margin (differences of identical computations: 0); class probabilities and
    /// ScaleNorm's decoder row vs the tensor path (the same kernel both sides: 0); a logged step-1
    /// loss vs `Evaluation.score` on the same batch (the same cross-entropy: 0, or a Double ulp of
    /// the ×count/÷count); the slack of a kσ check on attention outputs (T = 8, D = 4: two kernels
    /// differ by a walk of ≈ 1e-7).
    public static let fewRoundings: Double = 1e-6

    // MARK: - Single fp32 reductions against float64

    public enum Reduction {
        /// Row sums of x² over 257 columns (x uniform in [−1, 1], Σx² ≈ 86) through `Kernels.sum`
        /// (16 SIMD lanes of 16 terms, then the lanes, then the tail), against a Double sum of the
        /// same fp32 squares.
        ///
        /// Worst case γ₂₅₇·86 = 1.3e-3; walk over the actual partial sums (16 lanes reaching ≈ 5.4,
        /// a lane tree reaching 86): u·√(Σ Sᵢ²)/√3 ≈ 4e-6. Kept at 1e-3: 250× the walk, 0.8× the
        /// worst case (which needs all 257 roundings the same way). A fault of the parallel split
        /// (a row skipped or summed twice) is off by ≈ 86.
        public static let rowSumVsFloat64: Double = 1e-3

        /// Column sums over 600 rows (x uniform in [−1, 1]; three 256-row blocks summed in fp32,
        /// then the partial rows added in order) against a Double sum of the same values; also the
        /// norm weight gradient Σ g·x·rstd with |g·x·rstd| ≲ 1.7 the same way.
        ///
        /// Worst case γ₆₀₀·Σ|terms| ≈ 600u·300 = 1.1e-2 (sums) and ≈ 600u·500 = 1.8e-2 (gradient);
        /// walk u·√600·(partial sums ≲ 25) ≈ 3.6e-5. Kept at 1e-3: ≈ 30× the walk, well under the
        /// worst case. A block skipped or added twice moves a column by ≈ √256·0.58 ≈ 9.
        public static let rowBlockSumsVsFloat64: Double = 1e-3

        /// The fused cross-entropy (per row: max, V exps through tk_expf1 at ≤ 4u each, a V-term sum,
        /// a log; rows summed in Double, the mean rounded to Float) against a Double log-softmax of
        /// the same fp32 logits, V = 256, loss ≈ ln 256 ≈ 5.5.
        ///
        /// Worst case per row (V + 8)·4u = 6.3e-5 (the bound `Tests/CKernelTests` asserts for
        /// tk_logsumexp_rows), plus 0.5 ulp(5.5) = 2.4e-7 for the Float mean: 1e-4 is 1.6× the worst
        /// case; walk ≈ (√256 + 4)·u ≈ 1.2e-6 (80×). Scoring the prompt tokens too moves the loss by
        /// O(1).
        public static let crossEntropyVsFloat64: Double = 1e-4

        /// The gradient of a scalar parameter broadcast over a tensor (ScaleNorm's gain g over
        /// [2, 3, 8]: dL/dg = Σ n·x over 48 elements, n = x/rms(x), so Σ ≈ 48), fp32 backward against
        /// a Double sum of the same fp32 products, relative to max(1, |Σ|).
        ///
        /// Worst case γ₄₉ (48 products and a 48-term sum, all terms positive) = 2.9e-6 relative;
        /// walk √48·u = 4e-7. 1e-4 is 35× the worst case; kept because a wrong gradient (n instead
        /// of n·x, a missing broadcast sum) is off by O(1) relative.
        public static let broadcastGradientRelative: Double = 1e-4
    }

    // MARK: - Matrix products (OpenBLAS sgemm / the decoder's GEMV kernels)

    public enum GEMM {
        /// `BLAS.gemm` split over 2, 3 or 7 parts against the unsplit product: C = 1.5·op(A)·op(B) +
        /// 0.25·C₀ with entries of A, B, C₀ uniform in [−0.5, 0.5], k ≤ 50.
        ///
        /// A split by rows or columns of C usually keeps each element's k-order, but OpenBLAS may
        /// take another kernel (its small-matrix path) for the smaller blocks. Σ|ab| ≈ k/16 ≈ 3.1;
        /// walk √50·u·3.1·1.5 ≈ 2e-6 per side, √2 × that = 2.8e-6 for two orders: 1e-5 is 3.6×.
        /// Worst case γ₅₀·(3.1·1.5 + 0.25·0.5) = 1.4e-5. A block written at the wrong offset is off
        /// by O(1).
        ///
        /// The same bound holds a narrow product computed transposed (`BLAS.narrowColumns`) against
        /// the direct one, with beta 0, 1 or 0.25: the products are the same sums, and the transposed
        /// path rounds αAB once before adding β·C, one more rounding of |C| ≤ 1.5·3.1 + 0.5 ≈ 5.2,
        /// u·5.2 = 3e-7 beside the 2.8e-6 above.
        public static let splitVsUnsplit: Float = 1e-5

        /// A matrix-vector product against a float64 reference on the same (decoded) operands:
        /// `BLAS.gemm` with m = 1 (k = 37, |a|, |b| ≤ 0.5, α ≤ 2, β·c ≤ 0.5) and `tk_gemv_rows`
        /// (k ≤ 384, |w|, |x| ≤ 1, bias + y₀ ≤ 1.5, f32, bf16 and int8 weights).
        ///
        /// k = 384: Σ|wx| ≈ 96, results ≲ 15; worst case γ₃₈₇·97.5 = 2.2e-3 (the C kernel tests
        /// assert that form per row); walk measured with numpy/OpenBLAS sgemv on the same shape and
        /// distribution: 2.5e-6, with a strictly sequential sum 5.0e-6. k = 37: worst case 4.3e-5.
        /// 1e-4 is 20× the sequential walk at k = 384 and 2.3× the worst case at k = 37. A wrong
        /// tail, scale or bias is off by ≥ 1e-2.
        public static let matrixVectorVsFloat64: Double = 1e-4

        /// A linear layer's backward (dX = G·W with k = 128, dW = Gᵀ·X with k = 256; entries N(0, 1),
        /// results up to ≈ 65) against float64, after one backward and after a second that
        /// accumulates (the error doubles).
        ///
        /// Walk measured with numpy/OpenBLAS on these shapes: 2.1e-5 (dX), 3.9e-5 (dW) per pass, so
        /// ≈ 8e-5 after the second; 0.5 ulp(130) = 7.6e-6 is included. Worst case γ₂₅₆·163·2 = 5e-3.
        /// 1e-3 is 12× the walk. Beta 0 vs 1 mixed up, or a part missing, is off by O(10).
        public static let largeBackwardVsFloat64: Double = 1e-3

        /// The start-up check of the BLAS kernel (`BLASLibrary.startupError`): max|Δ| / max|ref| of
        /// a 37×71 by 71×29 product in every transpose combination, entries on a 1e-3 grid in
        /// [−1, 1]. The same threshold selects the kernel in `Sources/CPlatform/blas.c` (C cannot
        /// read this constant; keep the two equal).
        ///
        /// Worst case γ₇₁·Σ|ab| (≈ 71/4 ≈ 17.8) / max|ref| (≈ 9.7) = 7.8e-6; walk measured with
        /// numpy/OpenBLAS on this shape: 3e-7 (relative). 1e-5 is 1.3× the worst case and 33× the
        /// walk. A kernel with wrong results (the reason for the check) is off by O(1).
        public static let startupCheckRelative: Double = 1e-5
    }

    // MARK: - Attention

    public enum Attention {
        /// Attention forward and backward (out, lse, dq, dk, dv) against `Tests/Fixtures/attention`:
        /// q [2,4,48,16], k, v [2,2,48,16] and grad_out N(0, 1) (|·| ≤ 4.4), scale 0.25, causal /
        /// ALiBi / window 16, computed in float64 and stored rounded to fp32.
        ///
        /// Scores: 16-term products, Σ|qk|·0.25 ≈ 2.5, walk 4u·2.5 = 10u ≈ 6e-7 absolute, i.e. a
        /// relative error of 6e-7 on each softmax weight; out = Σ over ≤ 48 keys of p·v: walk
        /// √48·u·4.4 ≈ 1.8e-6; dv sums ≤ 96 query rows (48 × 2 heads): √96·u·5.9 ≈ 3.5e-6. So ≈ 3.5e-6
        /// (conservative) plus 0.5 ulp(5.9) = 2.4e-7 for the stored rounding. Measured fp32 vs
        /// float64: torch 1.6e-6 (`meta.json`), numpy 1.4e-6. 2e-5 is 5.4× the conservative walk,
        /// 11× the measured. (The C tests' worst-case form (D^1.5 + n + 6)·2u = 1.4e-5 per unit of
        /// magnitude.) A mask off by one key is off by ≥ 1e-2.
        public static let vsFloat64Fixture: Float = 2e-5

        /// The tiled kernel against the naive one (with soft-capping, sinks or dropout too), inputs
        /// uniform in [−1, 1], T ≤ 130, D ≤ 128, GQA groups ≤ 4, scale 1/√D (2/√D with softcap 2).
        ///
        /// Online-softmax rescaling and tile-wise sums change every order. Scores: Σ|qk|/√D ≈ √D/4,
        /// walk √D·u·√D/4 = D·u/4 ≤ 32u ≈ 1.9e-6 (relative error of the weights, times |v| ≤ 1);
        /// dk, dv sum ≤ 260 (T·group) query rows: √260·u·4 ≈ 3.8e-6. Two kernels: √2 × 3.8e-6 =
        /// 5.4e-6 (conservative), so 1e-5 is 1.9×; measured fp32 vs float64 on the sweep's shapes
        /// (numpy): ≤ 1.0e-6 per implementation, √2 × = 1.4e-6, so 7×. Dropout: the naive kernel
        /// scales the kept weights by 1/(1 − p) before the sum, the tiled one after: one more
        /// rounding. A tile edge dropping a key is off by ≥ 1e-3.
        public static let tiledVsNaive: Float = 1e-5

        /// The last 3 queries with `queryOffset` 17 against the same rows of the full call (T = 20,
        /// D = 16, window 6, ALiBi; |v| ≤ 1): the same kernel on the same keys; only the partition
        /// of the ≤ 6 visible keys into key tiles may differ, i.e. ≤ 4 roundings of |out| ≤ 1.
        ///
        /// γ₄ = 2.4e-7, walk 1.2e-7: 1e-6 is 4× the worst case of that difference. (With any other
        /// order of the scores' 16-term products the C tests' worst case would be (64 + 12)·2u ≈
        /// 9e-6; they do not change here.) A wrong offset shifts ALiBi/window by a key: ≥ 1e-2.
        public static let queryOffsetRows: Float = 1e-6

        /// An attention layer (q/k/v projections k = 16 with bias, QK-norm, RoPE/ALiBi/learned
        /// positions; init std 0.3, x uniform in [−1, 1], outputs O(1)) run incrementally with a KV
        /// cache (4 tokens, then 1 at a time) against one full forward of 7 tokens.
        ///
        /// The projections see other GEMM shapes (M = 8 + 2 + 2 + 2 vs 14 rows) and the attention
        /// other tiles: worst case γ₁₆·Σ|wx| (≈ 3) ≈ 2.9e-6 for a projection plus (4^1.5 + 7 + 6)·2u·2
        /// ≈ 5e-6 for the attention (C tests' form, |v| ≲ 2); walk ≈ 1e-6. 1e-5 is 1.2× the worst
        /// case, ≈ 10× the walk. A cache slot written at the wrong position is off by O(0.1).
        public static let incrementalVsFull: Float = 1e-5
    }

    // MARK: - Rotary position tables

    public enum RoPE {
        /// `inv_freq` against HF's (θ = 1e6, head_dim 16; YaRN factor 4): both sides evaluate
        /// fp32(1 / fp32(θ^(2i/d))) (YaRN: then the same fp32 blend). Our pow is Double rounded once to
        /// Float (correctly rounded); torch's fp32 pow is within 1 ulp and in practice equal.
        ///
        /// So the difference is 0 (the tests pass with it) or one ulp of inv_freq[i]. 1e-9 asserts bit
        /// equality where ulp(inv_freq) > 1e-9, i.e. inv_freq ≥ 2⁻⁶ (i ≤ 2 here: 1, 0.18, 0.032), and
        /// a relative 1e-9/inv_freq (one ulp or more) below that. A wrong exponent (2i/d vs i/d) is
        /// off by ≥ 0.1.
        public static let inverseFrequencies: Float = 1e-9

        /// Llama 3.1's scaled `inv_freq`, relative to HF's: θ^(2i/d) rounded once, then ≤ 4 fp32
        /// operations of the smooth blend, on both sides.
        ///
        /// Worst case ≈ 6 ulps apart if every rounding differs: 6·2⁻²³ ≈ 7e-7 relative (1e-6 is 1.4×);
        /// realistic (pow equal, √4 roundings) ≈ 2.4e-7 (4×). A frequency in the wrong region
        /// (kept / smoothed / divided) is off by ≥ 3% relative.
        public static let inverseFrequencyRelative: Float = 1e-6

        /// cos/sin tables against HF's (values ≤ 1.14 with YaRN's attention factor): the same fp32
        /// angle p·inv_freq on both sides (one fp32 product), our cos/sin correctly rounded (Double
        /// then Float), torch's fp32 cos/sin within 1 ulp, then the same fp32 product by the factor.
        ///
        /// ≤ 2 ulps of values < 2: 2·2⁻²³ = 2.4e-7; measured fp32 vs float64 for the fixtures' tables
        /// 1.9e-7 (llama3-tiny `meta.json`). 2e-6 is 8×. A wrong attention factor is off by ≥ 1e-2.
        public static let tables: Float = 2e-6
    }

    // MARK: - Tiny decoders (HF fixtures, the decode engine, merged adapters)

    /// Two fp32 evaluations of one tiny decoder whose kernels sum in other orders: ours against HF
    /// transformers' float32 fixtures (`Tests/Fixtures/*-tiny`: hidden 64, 2–4 layers, 4 heads of 16,
    /// MLP 128 (GPT-2 256, gpt-oss experts 32), vocab 512, 2×16 tokens, weights N(0, 0.1²),
    /// embeddings N(0, 0.2²)), the toolkit's decode engine against its tensor path, a merged
    /// LoRA model against the adapted one, one sequence alone against the same in a padded batch.
    ///
    /// Rounding walk of one block, relative to the scale of its output: each k-term product adds
    /// √k·u (norm 8u, QKV 8u, scores 4u, weighted sum of ≤ 16 values 4u, out-projection 8u, MLP up
    /// 8u, activation ≈ 4u (tk_expf1), down √128–√256 = 11–16u): ≈ 24u in quadrature. L ≤ 4 blocks
    /// and the LM head (8u): √(4·24² + 8²) ≈ 49u relative, for one implementation, if every term
    /// adds to the largest output (conservative). The fixture generator measured HF fp32 against an
    /// independent float64 re-implementation (`meta.json` → `tolerances_fp32_vs_fp64`): ≈ 14u
    /// relative to max|logit|.
    public enum Model {
        /// Logits (max |z| ≤ 9.6 over the fixtures; HF step logits of greedy generation; router
        /// logits, |z| ≤ 2, are one more 64-term product of a normed hidden state at depth ≤ 2).
        ///
        /// Conservative walk 49u·9.6 = 2.8e-5, √2 × for two implementations = 4e-5: 1e-4 is 2.5×.
        /// Measured fp32 vs float64 ≤ 6.4e-6 (qwen3-yarn-tiny), √2 × = 9e-6: 11×. A misplaced RoPE
        /// region, a missing norm offset or a wrong softcap moves logits by ≥ 2.5e-3.
        public static let logits: Float = 1e-4

        /// Hidden states (embedding output, every block's residual stream, the final norm; |h| ≤ 12.8
        /// at gemma3-tiny's last block).
        ///
        /// Conservative walk √4·24u·12.8 = 3.7e-5, √2 × = 5.2e-5: 1e-4 is 1.9×. Measured fp32 vs
        /// float64 ≤ 4.9e-6, √2 × = 7e-6: 14×.
        public static let hiddenStates: Float = 1e-4

        /// Mean cross-entropy (and MoE aux loss) of a tiny model: against HF (loss ≈ 6.3–8.1 over 26
        /// scored tokens), the decode engine's eval against the tensor path's (128 tokens), per-token
        /// multiple-choice scores and eval losses against transformers, chunked LM-head loss against
        /// the whole one, DPO's starting loss against ln 2.
        ///
        /// A cross-entropy moves by the softmax-weighted mean of its logits' errors: at typical
        /// logits (|z| ≲ 2) 49u·2 ≈ 6e-6 conservative, averaged over N ≥ 26 tokens with independent
        /// signs (÷√26) ≈ 1.2e-6, and 0.5 ulp(8) = 4.8e-7 for the fp32 result: ≈ 1.3e-6 a side
        /// (in quadrature); measured fp32 vs float64 ≤ 9e-7. Two implementations: √2 × 1.3e-6 ≈
        /// 1.8e-6, so 1e-5 is 5.5×. A label shifted by one token or an ignored index counted moves
        /// the loss by ≥ 1e-2.
        public static let loss: Double = 1e-5

        /// Every parameter gradient against HF's (|g| ≤ 0.37), and the chunked LM head's gradients
        /// against the whole head's (relative to max(1, |g|)).
        ///
        /// Weight gradients add a 32-term (B·T) product of backward activations to the forward walk:
        /// (49u + √32·u)·0.37 ≈ 1.2e-6 conservative, √2 × = 1.7e-6: 1e-5 is 6×. Measured fp32 vs
        /// float64 ≤ 5e-7, √2 × = 7e-7: 14×. A tied embedding missing the head's share is off by ≥ 1e-3.
        public static let gradients: Float = 1e-5

        /// MoE routing weights (softmax over 4 experts, top 2, renormalised; in [0, 1]).
        ///
        /// Δw ≤ w(1 − w)·|Δ(zᵢ − zⱼ)| ≤ 0.5·|Δz| for router logits |z| ≤ 2: 0.5·49u·2·√2 ≈ 4.1e-6
        /// conservative (1e-5 is 2.4×), plus a few roundings of w ≤ 1; from the measured logits error
        /// (14u): 1.2e-6 (8×). Renormalising the wrong pair is off by ≥ 0.1.
        public static let routingWeights: Float = 1e-5

        /// The f32 decode engine (C GEMV and decode-attention kernels) against the tensor path (BLAS,
        /// tiled attention) on the nano recipes' variants: |Δz| < this × max(1, max|z|).
        ///
        /// Two implementations of the same walk: √2·49u ≈ 70u = 4.1e-6 relative (conservative; head
        /// dim 128 adds √128·u in the scores, inside it), so 1e-5 is 2.4×; from the measured 14u:
        /// √2·14u = 1.2e-6 (8×). The absolute floor 1e-5 covers small-scale logits (init std 0.02).
        /// A wrong cache position or a missing component changes logits by ≥ 1e-3 relative.
        public static let decodeLogitsRelative: Float = 1e-5
    }

    // MARK: - Reduced-precision decoder weights (not fp32 rounding: the weights' quantisation)

    public enum Quantized {
        /// bf16 weights against f32 on the nano recipes: |Δz| < this × max|z| over 16 steps.
        ///
        /// Each weight is rounded to 8 significant bits, u_bf16 = 2⁻⁸ = 3.9e-3 (rms u_bf16/√3 =
        /// 2.3e-3 relative); a product of k terms with independent errors moves by ≈ 2.3e-3 of its
        /// scale; ≈ 13 products in series (2 layers × 6 + head) in quadrature: √13·2.3e-3 ≈ 8.3e-3
        /// relative. 0.02 is 2.4×. fp32 rounding (≈ 1e-6) cannot move the result across the bound:
        /// the quantisation error is fixed by the weights, the same on every CPU.
        public static let bf16LogitsRelative: Float = 0.02

        /// int8 weights (per-row scale max|w|/127) against f32, as `bf16LogitsRelative`.
        ///
        /// Step s = max|w|/127 ≈ 3σ/127 for Gaussian rows; uniform rounding error rms s/√12 ≈
        /// 6.8e-3·σ, i.e. 6.8e-3 relative per product; √13 × = 2.5e-2. 0.05 is 2×.
        public static let int8LogitsRelative: Float = 0.05

        /// Eval loss with int8 weights against the tensor path's: |ΔL| < this × L (L ≈ ln 512 = 6.2).
        ///
        /// ΔL ≈ softmax-weighted mean of the logit errors: 2.5e-2 × the logits' spread (≲ 0.2 at init
        /// std 0.02) ≈ 5e-3 absolute, against 0.01·6.2 = 0.062: ≥ 10×.
        public static let int8LossRelative: Double = 0.01

        /// Slack of |q·s − w| ≤ s/2 + slack for `tk_quantize_q8` (q = nearbyint(w·fl(1/s)), s =
        /// fl(max|w|/127), |w| ≤ 5).
        ///
        /// Worst case: fl(1/s) and w·fl(1/s) err by ≤ 2u relative, i.e. ≤ 127·2u·s beyond the half
        /// step, and fl(q·s) by 0.5 ulp(5) = 2.4e-7: together ≈ 2u·max|w| + 2.4e-7 ≈ 8.4e-7.
        /// Slack 1e-6 covers that worst case (1.2×; it is a worst case, not an estimate). A rounding
        /// to the wrong integer is off by a whole step s ≥ 5/127 ≈ 0.04.
        public static let int8HalfStepSlack: Float = 1e-6
    }

    // MARK: - LoRA

    public enum LoRA {
        /// A Linear with an adapter: (x·Wᵀ + b + Δ) − (x·Wᵀ + b) − Δ, with k = 4, |x|, |W|, |b| ≤ 1,
        /// |Δ| ≲ 2.
        ///
        /// The hook adds Δ to the base output (one rounding, 0.5 ulp(8) = 4.8e-7) and the test's
        /// subtractions add two more of |Δ|; a base product in another order adds γ₄·5 = 1.2e-6.
        /// Worst case ≈ 2e-6: 1e-5 is 5×. A missing scale (×2) is off by |Δ| ≈ 1.
        public static let hookedOutput: Float = 1e-5

        /// Merged weights W + (α/r)·B·A (r = 4, α/r = 2; |W| ≲ 0.1 at init std 0.02, |A| ≤ 1/8,
        /// |B| ≲ 0.05 after 5 steps at lr 1e-2) against the same sum in Double.
        ///
        /// Worst case γ₄·2·4·0.05·0.125 + 0.5 ulp(0.15) ≈ 2e-8. 1e-5 is 500× that; kept because it
        /// is already far below the fault it guards against (merging without α/r, or Bᵀ for B, is off
        /// by ≈ 1e-2).
        public static let mergedWeights: Double = 1e-5
    }

    // MARK: - Optimizers

    public enum Optimizer {
        /// SGD (plain, momentum, Nesterov), Adam, Adam-L2 and AdamW against PyTorch, 5 steps of the
        /// fixture problem L = mean((X·W + b − Y)²), X [32, 16], W [16, 8]: loss (3.7–5.7), both
        /// gradients (|g| ≤ 0.51) and both parameters (|W| ≤ 0.83) at every step.
        ///
        /// The residual is a 16-term product (Σ|xw| ≈ 3.6): walk 4u·3.6 ≈ 8.6e-7 per element; the
        /// loss, a mean of 256 squares (|r| rms 2.1), moves by 2·2.1·8.6e-7/√256 ≈ 2.3e-7, and its
        /// fp32 result rounds by up to 0.5 ulp(5.7) = 2.4e-7: ≈ 4e-7 a side. Gradients (a 32-term
        /// product) ≈ 1.5e-7; parameters move by lr × that, plus ≤ 3 roundings of |W| ≤ 0.83 a step.
        /// Measured fp32 vs float64 (`meta.json`): ≤ 7.1e-7 (sgd). Two implementations ≈ √2 × 4e-7 ≈
        /// 6e-7. Bound 2e-6: 3.3× that estimate, four ulps of a loss in [4, 8) (ulp 4.8e-7). (It was
        /// 1e-6, two ulps, which a third ulp of difference on another CPU's summation order would
        /// have failed.) A wrong step (a missing bias correction, weight decay applied as L2) is off
        /// by ≥ 1e-4 after one step.
        public static let fixtureStep: Double = 2e-6

        /// Muon against the same update with Newton–Schulz in float64 (`muon_ns_fp64`; u = 2⁻²⁴):
        /// - NS iteration = three fp32 GEMMs with inner dimension k ≤ 16 (W is 16×8) on operands of
        ///   magnitude ≤ 1 (X has unit Frobenius norm, so ‖A‖ = ‖XXᵀ‖ ≤ 1). The BLAS kernel fixes the
        ///   summation order (AVX-512 and AVX2 kernels block differently), so the error is a rounding
        ///   walk: √k·u per dot product (Higham's rule of thumb for the γ_k = k·u worst case), scaled
        ///   by the coefficients: (|a| + |b|·√16 + |c|·(√8 + √16))·u ≈ (3.4 + 19.1 + 13.9)·u ≈ 36u a step.
        /// - Later iterations amplify it by |p′(σ)| = |a + 3bσ² + 5cσ⁴|: about 3 while the singular
        ///   values are small (σ ≈ 1/√8 after normalising), at most 1.6 on [0.7, 1.2] where they
        ///   settle. Summed over the five iterations: 3·3·1.6·1.6 + 3·1.6·1.6 + 3·1.6 + 1.6 + 1 ≈ 36.
        /// - So |ΔO| ≲ 36·36u ≈ 1300u ≈ 7.7e-5, and W moves by lr·√max(1, rows/cols) = 0.02·√2 times
        ///   that: ≈ 2.2e-6 a step; five independent steps ≈ √5·2.2e-6 ≈ 4.9e-6 (the fp32 gradient,
        ///   with inner dimension 32, adds √32·u·|W| ≈ 3e-7).
        /// - Bound 5e-6 (measured: 4e-7 with OpenBLAS SkylakeX, 1.4e-6 with Haswell).
        public static let muonVsFloat64: Double = 5e-6

        /// Muon against the same update with NS in fp32 (`muon_ns_fp32`): both sides round
        /// independently, √2 × `muonVsFloat64` ≈ 7e-6.
        public static let muonVsFloat32: Double = 7e-6

        /// Muon against torch.optim.Muon, whose NS runs in bfloat16 (u_bf16 = 2⁻⁸ = 3.9e-3).
        ///
        /// Not an fp32 bound. An emulation of torch's bf16 NS (bf16 operands and results, fp32
        /// accumulation) on the fixture's first update errs by |ΔO| ≈ 0.03 (max|O| = 0.57), i.e.
        /// 0.02·√2·0.03 = 8.5e-4 on W a step; five steps with independent errors ≈ √5 × = 1.9e-3.
        /// The fixture records 8.8e-4 (bf16 vs float64 NS). 5e-3 is 2.6× the five-step estimate and
        /// 5.7× the recorded difference; a wrong momentum or lr scale is off by ≥ 1e-2.
        public static let muonVsTorchBFloat16: Double = 5e-3

        /// One Muon step (wide 8×16, square 12×12, tall 20×6; W ~ N(0, 0.5²)) against a float64
        /// step from the same fp32 weights, lr 0.05, scale ≤ 1.83 (original) or ≤ 0.89 (match-RMS).
        ///
        /// NS as in `muonVsFloat64` (k ≤ 20); measured with numpy/OpenBLAS fp32 vs float64 NS on these
        /// shapes: |ΔO| ≤ 1.1e-6, so lr·scale·|ΔO| ≤ 1e-7; the fp32 update W·(1 − lr·wd) − lr·s·O
        /// adds ≤ 3 roundings of |W| ≤ 2 (0.5 ulp = 1.2e-7 each; the Float constant 1 − lr·wd adds
        /// u·|W|): ≈ 3e-7 walk. 2e-6 is 7×. (The conservative |ΔO| of `muonVsFloat64`, 7.7e-5,
        /// would give 7e-6 on the tall shape; the measured NS error is 70× below it.) A wrong
        /// transpose or lr scale is off by ≥ 1e-3.
        public static let muonStepVsFloat64: Double = 2e-6

        /// Adam's first moment after one step, m = (1 − β₁)·g, against 0.1·g in fp32 (|g| ≤ 0.14).
        ///
        /// fl(1 − 0.9) = 0.100000024 differs from fl(0.1) by 2.2e-8, times |g|: 3.1e-9; each product
        /// rounds by 0.5 ulp(0.014) = 4.7e-10: ≈ 4e-9 worst case. 1e-7 is 25×. Using β₁ instead of
        /// 1 − β₁ is off by ≈ 0.1.
        public static let adamFirstMoment: Float = 1e-7
    }

    // MARK: - Whole training runs

    public enum Training {
        /// `toolkit train` losses over 5 full-batch steps against PyTorch (`hf-trajectories`: ten
        /// small HF models, hidden 24–32, 2–4 layers, vocab 140–200, 4×17 tokens; AdamW lr 3e-3, SGD
        /// lr 0.05 with and without momentum; losses 3–6).
        ///
        /// Step 1 is `Model.loss` (≈ 1.8e-6). Later steps add the weights' divergence: SGD moves them
        /// by lr × (gradient rounding) ≈ 0.05·1e-6; AdamW normalises the update, so its relative error
        /// is that of the gradient (≈ 1e-6) except where a gradient sits at the rounding-noise level
        /// (`reorderedLoss`). The generator recorded fp32 vs float64 differences ≤ 2.9e-6 (smollm3
        /// AdamW), √2 × = 4e-6: 1e-4 is 25×. Kept: AdamW's heavy tail (sign flips of noise-level
        /// gradients) has no closed-form bound, and a wrong optimizer detail (bias correction, eps
        /// placement, momentum dampening) moves step 2 by ≥ 1e-3.
        public static let trajectoryLoss: Double = 1e-4

        /// Losses of two runs that sum the same gradients in another order (nano, vocab 300; 20 steps
        /// at lr 3e-3): MPI ranks against one process with gradient accumulation, overlapped vs
        /// post-backward vs sharded sums, resumed across process counts, gradient accumulation 4×1
        /// vs 2×2 vs 1×4, `compare` spread over ranks (one core vs two: split bias/norm reductions).
        ///
        /// Each gradient element differs by a few ulps. AdamW divides every update by √v̂, so an
        /// element whose gradient is at that noise level can move by up to 2·lr a step in one run
        /// and not the other (observed: weights 1.2e-5 apart after 20 steps). The loss averages over
        /// all weights: observed 2.4e-7 (half an ulp of a loss ≈ 5.7). 1e-5 is 20 ulps (40×
        /// observed). A rank's gradients missing, a wrong scale or the same micro-batch on both ranks
        /// moves the losses by ≥ 1e-3 from the first step.
        public static let reorderedLoss: Double = 1e-5

        /// Weights after 3 steps of gradient accumulation 4×1 vs 2×2 vs 1×4 (nano, vocab 64, AdamW
        /// lr 3e-3 with 2 warm-up steps).
        ///
        /// A typical element's update changes by its gradient's relative rounding (√4·u ≈ 1.2e-7)
        /// times lr: ≈ 1e-9 a step. Not a worst-case bound: an element whose gradient sits at the
        /// rounding-noise level can flip its Adam update (up to 2·lr a step, see `reorderedLoss`);
        /// the bound assumes no element of the test's fixed data sits at that level. Micro-batches
        /// weighted wrongly move weights by ≥ 1e-4.
        public static let reorderedWeights: Float = 1e-5

        /// Weights of a ZeRO-1 run against the same run without sharding (2 ranks, AdamW and Muon,
        /// 20 steps at lr 3e-3, clipping at 0.5).
        ///
        /// ZeRO-1 sums the squared gradient norm as two Double partial sums instead of one running
        /// sum; that moves the clipping factor (rounded to Float) by ≤ 1 ulp a step: 6e-8 relative of
        /// an update ≤ lr, i.e. ≤ 1.8e-10 a step, 3.6e-9 over 20 steps (Adam and NS are scale-
        /// invariant up to eps, so even that mostly cancels). 1e-6 is 280×. A shard updated twice
        /// or not at all is off by ≈ lr = 3e-3.
        public static let shardedOptimizerWeights: Float = 1e-6
    }

    // MARK: - Finite-difference gradient checks

    /// The thresholds of `GradCheck` (`Sources/_TestSupport/GradCheck.swift`): a check passes
    /// where |analytic − numeric| ≤ absolute + relative·|numeric| (and likewise for the forward
    /// values against the float64 reference). They are not tight rounding bounds: they separate
    /// rounding (≲ 1e-5 relative) from a wrong derivative (O(1) relative).
    public enum FiniteDifference {
        /// `GradCheck.check`: central differences of the float64 reference with this step.
        ///
        /// Truncation ≈ h²/6·|f‴| ≈ 2e-13·|f‴|; cancellation ≈ u₆₄·|L|/h ≈ 1.1e-10·|L|: the numeric
        /// derivative is exact to ≲ 1e-8 for the checked ops (|L| ≲ 100). 1e-6 is PyTorch's default.
        public static let float64Step: Double = 1e-6

        /// `GradCheck.check`'s absolute part, for forward values (fp32 op vs float64 reference) and
        /// gradients (fp32 backward vs float64 differences).
        ///
        /// The checked ops are small: reductions and softmax rows of ≤ 33 terms, matmuls with k ≤ 7,
        /// attention over ≤ 6 keys, broadcasts summing ≤ 12 gradient terms; inputs in [−3, 3]. An
        /// element summing n ≤ 40 terms errs by a walk √n·u·Σ|terms| ≤ √40·u·(40·0.5) ≈ 7.5e-6
        /// (|terms| ≈ 0.5 on average; the worst case γ₄₀·40·3 = 2.9e-4 needs every term at the input
        /// bound and every rounding one way). 1e-4 is 13× the walk; the relative part adds
        /// 1e-3·|value| for large elements. A wrong derivative is off by O(|value|).
        public static let float64Absolute: Double = 1e-4

        /// `GradCheck.check`'s relative part: walk √40·u ≈ 3.8e-7 relative (2600×); worst case
        /// γ₄₀ = 2.4e-6 (400×).
        public static let float64Relative: Double = 1e-3

        /// `GradCheck.checkFloat32` (components built from checked ops): central differences of the
        /// fp32 model itself with this step (loss Σ y·R summed in Double).
        ///
        /// Truncation h²/6·|L‴| ≈ 1.7e-5·|L‴|: inside `float32Relative` while |L‴/L′| ≲ 1200.
        public static let float32Step: Float = 1e-2

        /// `GradCheck.checkFloat32`'s absolute part.
        ///
        /// Each of N ≤ 160 outputs (|y| ≲ 1, ≈ 10 fp32 roundings deep: ≈ 10u) perturbs L = Σ y·R by a
        /// walk of √160·10u ≈ 7.6e-6; two evaluations, divided by 2h = 0.02: ≈ 5.4e-4 of noise in the
        /// difference quotient. 2e-3 is 3.7×.
        public static let float32Absolute: Double = 2e-3

        /// `GradCheck.checkFloat32`'s relative part: covers the truncation h²·|L‴|/(6|L′|) ≲ 2e-2
        /// while |L‴/L′| ≲ 1200 (smooth components with O(1) inputs and init std 0.3 are far below).
        public static let float32Relative: Double = 2e-2
    }

    // MARK: - Statistical checks (sampling noise, not rounding)

    public enum Statistics {
        /// The half-width, in standard deviations, of a check on a sampled statistic (kept fraction
        /// and mean of dropout masks, agreement of independent masks, attention-with-dropout averaged
        /// over seeds). Not a rounding bound.
        ///
        /// Each statistic is a count or a mean over n ≥ 4000 independent draws (binomial masks, or
        /// attention outputs over 4000 seeds), Gaussian to within the CLT's error, so a correct
        /// implementation leaves ±kσ with probability 2Φ(−k): k = 5 gives 5.7e-7 per check.
        /// The suite makes ≈ 70 such checks (64 attention outputs, 4 dropout moments, 2 mask
        /// agreements): with any other seed or generator stream, all pass with probability
        /// 1 − 4e-5. The seeds are fixed, so the checks are deterministic; k = 5 keeps them from
        /// tripping when a seed or the generator changes, and still detects a biased mask: at n = 2²⁰
        /// and p = 0.5, 5σ is a 0.24% shift of the kept fraction.
        public static let sigmas: Double = 5

        /// Mean and standard deviation of 20,000 draws of N(1, 2²) (`Tensor.randn`), absolute.
        ///
        /// Standard error of the mean 2/√20000 = 0.0141, of the standard deviation ≈ 2/√40000 = 0.01:
        /// `Statistics.sigmas` = 5 standard errors: 0.0707 for the mean and 0.05 for the deviation
        /// (this constant is the larger, 0.071). A generator with the wrong scale (std 1 or 4) or a
        /// shifted mean is off by ≥ 1.
        public static let randnMoments: Double = 0.071
    }
}
