extension Tensor {
    /// Embedding lookup: rows of `weight` `[V, C]` for `ids` (shape `idsShape`) → `[idsShape..., C]`.
    /// Backward scatter-adds into the rows used (repeated ids accumulate).
    public static func embedding(_ weight: Tensor, ids: [Int32], shape idsShape: [Int]) throws -> Tensor {
        guard weight.rank == 2 else {
            throw TensorError.invalidArgument(op: "embedding", message: "weight must be [V, C], got \(weight.shape)")
        }
        guard Shape.count(idsShape) == ids.count else {
            throw TensorError.shapeMismatch(op: "embedding(ids)", lhs: idsShape, rhs: [ids.count])
        }
        let v = weight.shape[0], c = weight.shape[1]
        if let bad = ids.first(where: { $0 < 0 || Int($0) >= v }) {
            throw TensorError.invalidArgument(op: "embedding", message: "token id \(bad) outside the vocabulary 0..<\(v)")
        }
        var out = Tensor(storage: TensorStorage(count: ids.count * c, zeroed: false), shape: idsShape + [c])
        let pw = weight.storage.pointer, po = out.storage.pointer
        for (i, id) in ids.enumerated() { (po + i * c).update(from: pw + Int(id) * c, count: c) }
        record(&out, [weight]) { g, nodes in
            let gw = nodes[0]!.gradBuffer()
            for (i, id) in ids.enumerated() {
                let d = gw + Int(id) * c, s = g + i * c
                for j in 0..<c { d[j] += s[j] }
            }
        }
        return out
    }
}
