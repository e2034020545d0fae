/// Whether operations record themselves for backward. Disable with `GradMode.withoutGrad`.
public enum GradMode {
    @TaskLocal public static var isEnabled = true

    /// Runs `body` without recording anything on the tape and without allocating gradients.
    public static func withoutGrad<R>(_ body: () throws -> R) rethrows -> R {
        try $isEnabled.withValue(false) { try body() }
    }
}

/// One recorded value on the tape: its gradient buffer, its parents and the closure that
/// propagates its gradient to them.
///
/// Leaves (parameters, inputs marked `requiringGrad`) keep their gradient across backward calls,
/// accumulating until `zeroGrad()`. Interior nodes free theirs as soon as it has been propagated.
public final class Node: @unchecked Sendable {
    public let shape: [Int]
    public let count: Int
    public let isLeaf: Bool
    /// Accumulated gradient (same shape as the value), allocated on first use.
    public internal(set) var grad: TensorStorage?
    var parents: [Node]
    /// Reads this node's gradient and accumulates (+=) into the parents' gradient buffers. It is
    /// this node's last use of the buffer, so it may hand the buffer itself to a parent
    /// (`accumulate(taking:)`).
    var backwardFn: ((TensorStorage) -> Void)?

    init(shape: [Int], isLeaf: Bool, parents: [Node] = [], backward: ((TensorStorage) -> Void)? = nil) {
        self.shape = shape
        self.count = Shape.count(shape)
        self.isLeaf = isLeaf
        self.parents = parents
        self.backwardFn = backward
    }

    /// The gradient buffer, zero-initialised on first access. Backward kernels add into it.
    @inline(__always) public func gradBuffer() -> UnsafeMutablePointer<Float> {
        if let g = grad { return g.pointer }
        let g = TensorStorage(count: count)
        grad = g
        return g.pointer
    }

    /// The gradient buffer for an op that writes every element when the buffer is new (a GEMM with
    /// beta = 0): `fresh` is true when it was just allocated, unzeroed, so the op must overwrite
    /// rather than accumulate; false when earlier ops already accumulated into it.
    @inline(__always) public func gradBufferForOverwrite() -> (pointer: UnsafeMutablePointer<Float>, fresh: Bool) {
        if let g = grad { return (g.pointer, false) }
        let g = TensorStorage(count: count, zeroed: false)
        grad = g
        return (g.pointer, true)
    }

    /// Adds `g` (same count) into this node's gradient, or, when it has none yet, takes `g` itself
    /// as its gradient: an op whose input gradient equals its output gradient (a reshape, either
    /// side of a sum) then hands the buffer on instead of zero-filling a new one and adding into
    /// it. The caller must not write `g` afterwards (its own node is done with it).
    func accumulate(taking g: TensorStorage) {
        guard grad != nil else { grad = g; return }
        writeOrAdd(g.pointer, times: 1)
    }

    /// Writes `factor · g` (same count) into this node's gradient when it is new (never
    /// zero-filled) and adds it into one that earlier ops filled, in one vectorised pass.
    func writeOrAdd(_ g: UnsafePointer<Float>, times factor: Float) {
        let (buffer, fresh) = gradBufferForOverwrite()
        let dst = UnsafeSendablePointer(buffer), src = UnsafeSendablePointer(UnsafeMutablePointer(mutating: g))
        Parallel.forRange(count) { r in
            switch (fresh, factor == 1) {
            case (true, true): (dst.pointer + r.lowerBound).update(from: src.pointer + r.lowerBound, count: r.count)
            case (true, false): for i in r { dst[i] = factor * src[i] }
            case (false, true): for i in r { dst[i] += src[i] }
            case (false, false): for i in r { dst[i] += factor * src[i] }
            }
        }
    }

    /// Writes `value(i)` for every i into this node's gradient when it is new (never zero-filled)
    /// and adds it into one that earlier ops filled, split over the cores.
    @inline(__always) func writeOrAddGradient(costPerItem: Int = 1, _ value: @escaping @Sendable (Int) -> Float) {
        let (buffer, fresh) = gradBufferForOverwrite()
        let g = UnsafeSendablePointer(buffer)
        Parallel.forRange(count, costPerItem: costPerItem) { r in
            if fresh { for i in r { g[i] = value(i) } } else { for i in r { g[i] += value(i) } }
        }
    }

    /// Drops the accumulated gradient.
    public func zeroGrad() { grad = nil }
}

extension Tensor {
    /// Records `out` as the result of an op on `inputs`, when grad mode is on and some input is on
    /// the tape. `backward` receives dOut and the inputs' nodes (nil for constants) and must
    /// accumulate into `node.gradBuffer()` of each non-nil input node.
    @inline(__always)
    static func record(
        _ out: inout Tensor, _ inputs: [Tensor],
        _ backward: @escaping (_ dOut: UnsafeMutablePointer<Float>, _ nodes: [Node?]) -> Void
    ) {
        recordPassingGradient(&out, inputs) { dOut, nodes in backward(dOut.pointer, nodes) }
    }

    /// `record` for an op whose backward receives dOut's buffer itself (`TensorStorage`), so it can
    /// pass it on with `Node.accumulate(taking:)`.
    @inline(__always)
    static func recordPassingGradient(
        _ out: inout Tensor, _ inputs: [Tensor], _ backward: @escaping (_ dOut: TensorStorage, _ nodes: [Node?]) -> Void
    ) {
        guard GradMode.isEnabled, inputs.contains(where: { $0.node != nil }) else { return }
        let nodes = inputs.map(\.node)
        out.node = Node(shape: out.shape, isLeaf: false, parents: nodes.compactMap { $0 }) { dOut in backward(dOut, nodes) }
    }

    /// Back-propagates from this scalar: accumulates d(self)/d(leaf) into every leaf's gradient.
    ///
    /// The graph is consumed: saved activations are released as the walk proceeds.
    /// `onLeafReady`, when given, is called for each leaf as soon as the last op that uses it has
    /// propagated into it, so its gradient for this backward is complete (data-parallel training
    /// starts summing a layer's gradients over processes while the earlier layers still run).
    public func backward(onLeafReady: ((Node) -> Void)? = nil) throws {
        guard count == 1 else {
            throw TensorError.invalidArgument(op: "backward", message: "needs a scalar, got shape \(shape)")
        }
        guard let root = node else {
            throw TensorError.invalidArgument(op: "backward", message: "tensor is not on the tape (no input requires grad)")
        }
        root.gradBuffer()[0] += 1
        Self.propagate(from: root, onLeafReady: onLeafReady)
    }

    /// Back-propagates `gradient` (same shape as this tensor) from this tensor: accumulates into
    /// every leaf's gradient, as `backward()` does from a scalar.
    public func backward(gradient: UnsafePointer<Float>) throws {
        guard let root = node else {
            throw TensorError.invalidArgument(op: "backward", message: "tensor is not on the tape (no input requires grad)")
        }
        let g = root.gradBuffer()
        for i in 0..<count { g[i] += gradient[i] }
        Self.propagate(from: root, onLeafReady: nil)
    }

    /// Walks the graph under `root` (whose gradient is set) in reverse topological order.
    static func propagate(from root: Node, onLeafReady: ((Node) -> Void)?) {
        // Topological order by an explicit-stack DFS (no recursion on deep graphs).
        var order: [Node] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Node, Bool)] = [(root, false)]
        while let (n, expanded) = stack.popLast() {
            if expanded { order.append(n); continue }
            if visited.contains(ObjectIdentifier(n)) { continue }
            visited.insert(ObjectIdentifier(n))
            stack.append((n, true))
            for p in n.parents where !visited.contains(ObjectIdentifier(p)) { stack.append((p, false)) }
        }
        // For the hook: how many recorded uses of each leaf are still to propagate.
        var uses: [ObjectIdentifier: Int] = [:]
        if onLeafReady != nil {
            for n in order { for p in n.parents where p.isLeaf { uses[ObjectIdentifier(p), default: 0] += 1 } }
        }
        for n in order.reversed() {
            if let fn = n.backwardFn, let g = n.grad { fn(g) }
            if let onLeafReady {
                for p in n.parents where p.isLeaf {
                    let id = ObjectIdentifier(p), left = uses[id, default: 1] - 1
                    uses[id] = left
                    if left == 0 { onLeafReady(p) }
                }
            }
            n.backwardFn = nil
            n.parents = []
            if !n.isLeaf { n.grad = nil }
        }
    }

    /// The accumulated gradient of a leaf, as a tensor (nil if none yet).
    public var grad: Tensor? {
        guard let n = node, let g = n.grad else { return nil }
        return Tensor(storage: g, shape: shape)
    }

    /// A leaf on the tape sharing this tensor's values; its gradient accumulates across backward
    /// calls until `zeroGrad()`.
    public func requiringGrad() -> Tensor {
        var t = Tensor(storage: storage, shape: shape)
        t.node = Node(shape: shape, isLeaf: true)
        return t
    }

    /// This tensor's values without tape history.
    public func detached() -> Tensor { Tensor(storage: storage, shape: shape) }

    /// Clears a leaf's gradient.
    public func zeroGrad() { node?.zeroGrad() }
}

extension Tensor {
    /// Activation checkpointing: runs `body(x)` without keeping its intermediate values and records
    /// one op whose backward runs `body` again from the saved `x`, then back-propagates through
    /// that recomputation into `x` and into `parameters` (the leaves `body` reads, listed so that the
    /// tape orders them and reports them ready after this op). Memory: the input of each
    /// checkpointed piece instead of all its intermediates; time: one more forward of the piece.
    /// `body` must compute the same values both times (no randomness it draws anew, no state it
    /// changes for later use).
    public static func checkpointed(_ x: Tensor, parameters: [Tensor], _ body: @escaping (Tensor) throws -> Tensor) throws -> Tensor {
        guard GradMode.isEnabled, x.node != nil || parameters.contains(where: { $0.node != nil }) else { return try body(x) }
        var out = try GradMode.withoutGrad { try body(x) }
        let saved = x.detached(), xNode = x.node
        let parents = ([xNode] + parameters.map(\.node)).compactMap { $0 }
        out.node = Node(shape: out.shape, isLeaf: false, parents: parents) { dOut in
            let input = xNode == nil ? saved : saved.requiringGrad()
            do {
                let y = try body(input)  // recorded: grad mode is on during backward
                if y.node != nil { try y.backward(gradient: dOut.pointer) }
            } catch {
                // The same forward succeeded on the same values moments ago.
                fatalError("activation checkpointing: the recomputed forward failed: \(error)")
            }
            // The recomputation's input leaf is dropped here, so its gradient buffer can be handed on.
            if let xNode, let g = input.node?.grad { xNode.accumulate(taking: g) }
        }
        return out
    }
}
