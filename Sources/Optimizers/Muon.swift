import Layers
import TensorCore

/// Muon (MomentUm Orthogonalized by Newton–Schulz) for 2-D weight matrices, with the update
/// rule of `torch.optim.Muon`, Newton–Schulz run in Float32 through BLAS.
///
/// ```
/// buf = μ·buf + (1 − μ)·g                       (buf starts at zero)
/// u   = (1 − μ)·g + μ·buf  if nesterov, else buf
/// X   = u / max(‖u‖_F, eps), transposed when rows > cols
/// 5×: A = X·Xᵀ;  X = a·X + (b·A + c·A·A)·X       (a, b, c) = (3.4445, −4.7750, 2.0315)
/// p   = p·(1 − lr·wd)
/// p   = p − lr·scale·X(ᵀ)   scale = √max(1, rows/cols)          (.original)
///                          scale = 0.2·√max(rows, cols)          (.matchRMSAdamW)
/// ```
/// Use it for hidden matrices only; embeddings, the output head, norms and biases belong to
/// AdamW (see `MultiOptimizer.muonWithAdamW`). Reference: K. Jordan, https://kellerjordan.github.io/posts/muon/ ;
/// `torch.optim.Muon`. PyTorch runs the iteration in bfloat16; this one is Float32 (closer to the
/// exact iteration). State: `<param>.momentum_buffer`, `<param>.step`.
public final class Muon: OptimizerGroup {
    /// How the learning rate is scaled by the matrix shape.
    public enum LearningRateAdjustment: String, Sendable, Codable {
        /// Keller Jordan's `√max(1, rows/cols)`.
        case original
        /// Moonshot's `0.2·√max(rows, cols)`, which lets Muon reuse AdamW learning rates.
        case matchRMSAdamW = "match_rms_adamw"
    }

    public let momentum: Double
    public let nesterov: Bool
    public let coefficients: (a: Float, b: Float, c: Float)
    public let newtonSchulzSteps: Int
    public let epsilon: Double
    public let adjustment: LearningRateAdjustment

    /// Newton–Schulz workspace shared by all parameters (sized for the largest): X, Y [r·c],
    /// A, B [min(r,c)²]. Allocated at the first step.
    private var workspace: (x: TensorStorage, y: TensorStorage, a: TensorStorage, b: TensorStorage)?

    /// Defaults follow `torch.optim.Muon`: lr 1e-3, weight decay 0.1, momentum 0.95, Nesterov,
    /// coefficients (3.4445, −4.7750, 2.0315), eps 1e-7, 5 steps, `.original` scaling.
    /// - Throws: `OptimizerError.unsupportedParameter` for parameters that are not 2-D.
    public init(
        _ parameters: [NamedParameter], learningRate: Double = 1e-3, weightDecay: Double = 0.1,
        momentum: Double = 0.95, nesterov: Bool = true,
        coefficients: (a: Float, b: Float, c: Float) = (3.4445, -4.7750, 2.0315),
        newtonSchulzSteps: Int = 5, epsilon: Double = 1e-7,
        adjustment: LearningRateAdjustment = .original, label: String = "muon"
    ) throws {
        try checkHyperparameter(
            "momentum", momentum, momentum >= 0 && momentum < 1, "must be in [0, 1)")
        try checkHyperparameter(
            "epsilon", epsilon, epsilon > 0 && epsilon.isFinite, "must be positive")
        try checkHyperparameter(
            "ns_steps", Double(newtonSchulzSteps),
            newtonSchulzSteps >= 0 && newtonSchulzSteps <= 100)
        for (name, p) in parameters where p.shape.count != 2 || p.count == 0 {
            throw OptimizerError.unsupportedParameter(
                name: name, shape: p.shape,
                reason: "Muon needs a non-empty 2-D matrix (use AdamW for it)")
        }
        self.momentum = momentum
        self.nesterov = nesterov
        self.coefficients = coefficients
        self.newtonSchulzSteps = newtonSchulzSteps
        self.epsilon = epsilon
        self.adjustment = adjustment
        try super.init(
            label: label, parameters: parameters, learningRate: learningRate,
            weightDecay: weightDecay,
            slotNames: ["momentum_buffer"])
    }

    override func prepareStep() {
        guard workspace == nil else { return }
        var big = 1
        var small = 1
        for (_, p) in parameters {
            big = max(big, p.count)
            small = max(small, min(p.shape[0], p.shape[1]))
        }
        workspace = (
            TensorStorage(count: big), TensorStorage(count: big),
            TensorStorage(count: small * small), TensorStorage(count: small * small)
        )
    }

    /// The learning-rate scale for a `rows × cols` matrix.
    public func learningRateScale(rows: Int, cols: Int) -> Double {
        switch adjustment {
        case .original: return max(1, Double(rows) / Double(cols)).squareRoot()
        case .matchRMSAdamW: return 0.2 * Double(max(rows, cols)).squareRoot()
        }
    }

    override func update(
        index: Int, values: UnsafeMutablePointer<Float>, grad: UnsafeMutablePointer<Float>,
        count: Int
    ) {
        guard let ws = workspace else { return }
        let shape = parameters[index].parameter.shape
        let rows = shape[0]
        let cols = shape[1]
        let transposed = rows > cols
        let buf = slot(0, of: index).pointer
        let x = ws.x.pointer
        let mu = Float(momentum)
        let w = Float(1 - momentum)

        // Momentum and the Nesterov blend, written into X (transposed when rows > cols).
        for i in 0..<rows {
            for j in 0..<cols {
                let k = i * cols + j
                let b = lerp(buf[k], grad[k], w)
                buf[k] = b
                x[transposed ? j * rows + i : k] = nesterov ? lerp(grad[k], b, mu) : b
            }
        }
        let m = min(rows, cols)
        let n = max(rows, cols)
        NewtonSchulz.orthogonalize(
            x, m: m, n: n, coefficients: coefficients, steps: newtonSchulzSteps,
            epsilon: Float(epsilon),
            scratch: ws.y.pointer, gram: ws.a.pointer, polynomial: ws.b.pointer)

        let shrink = Float(1 - learningRate * weightDecay)
        let alpha = Float(-(learningRate * learningRateScale(rows: rows, cols: cols)))
        for i in 0..<rows {
            for j in 0..<cols {
                let k = i * cols + j
                values[k] = values[k] * shrink + alpha * x[transposed ? j * rows + i : k]
            }
        }
    }
}

/// The quintic Newton–Schulz iteration that maps a matrix to (approximately) its orthogonal
/// polar factor, in Float32 through BLAS with caller-provided work buffers.
public enum NewtonSchulz {
    /// Orthogonalises `x` [m, n] (m ≤ n, row-major) in place:
    /// ```
    /// X = X / max(‖X‖_F, epsilon)
    /// steps×: A = X·Xᵀ [m,m];  B = b·A + c·A·A;  X = a·X + B·X
    /// ```
    /// Buffers: `scratch` [m·n], `gram` and `polynomial` [m·m].
    public static func orthogonalize(
        _ x: UnsafeMutablePointer<Float>, m: Int, n: Int,
        coefficients: (a: Float, b: Float, c: Float),
        steps: Int, epsilon: Float, scratch: UnsafeMutablePointer<Float>,
        gram: UnsafeMutablePointer<Float>, polynomial: UnsafeMutablePointer<Float>
    ) {
        let count = m * n
        var sumSquares = 0.0
        for i in 0..<count { sumSquares += Double(x[i]) * Double(x[i]) }
        let norm = max(Float(sumSquares.squareRoot()), epsilon)
        for i in 0..<count { x[i] = x[i] / norm }

        var cur = x
        var next = scratch
        for _ in 0..<steps {
            // A = X·Xᵀ
            BLAS.gemm(
                transA: false, transB: true, m: m, n: m, k: n, alpha: 1, a: cur, lda: n, b: cur,
                ldb: n,
                beta: 0, c: gram, ldc: m)
            // B = b·A + c·A·A
            polynomial.update(from: gram, count: m * m)
            BLAS.gemm(
                transA: false, transB: false, m: m, n: m, k: m, alpha: coefficients.c, a: gram,
                lda: m,
                b: gram, ldb: m, beta: coefficients.b, c: polynomial, ldc: m)
            // X' = a·X + B·X
            next.update(from: cur, count: count)
            BLAS.gemm(
                transA: false, transB: false, m: m, n: n, k: m, alpha: 1, a: polynomial, lda: m,
                b: cur, ldb: n, beta: coefficients.a, c: next, ldc: n)
            swap(&cur, &next)
        }
        if cur != x { x.update(from: cur, count: count) }
    }
}

extension OptimizerKind {
    /// Recipe/flag name `muon`: Muon (momentum 0.95 by default, learning rate `muon_lr`) on hidden
    /// matrices, AdamW on embeddings, the head, norms and biases.
    public static let muon = OptimizerKind(
        name: "muon", summary: "Muon (Newton–Schulz) on hidden matrices, AdamW on the rest", defaultMomentum: 0.95
    ) { c, params in
        try MultiOptimizer.muonWithAdamW(
            params, muonLearningRate: c.muonLearningRate, muonMomentum: c.muonMomentum, muonWeightDecay: c.muonWeightDecay,
            muonNesterov: c.muonNesterov, muonAdjustment: c.muonLearningRateAdjustment, adamLearningRate: c.learningRate,
            beta1: c.beta1, beta2: c.beta2, epsilon: c.epsilon, adamWeightDecay: c.weightDecay, useMuon: c.muonFilter,
            noDecay: c.noDecayFilter)
    }
}
