import Foundation
import Optimizers
import TensorCore
import ToolkitSupport

/// How a data-parallel run (`mpirun -np N toolkit train`) moves gradients and optimizer state.
/// None of these change the result beyond fp32 summation order.
public struct DataParallelOptions: Sendable, Equatable {
    /// Start summing a bucket of gradients as soon as the backward has finished with every
    /// parameter in it (false: sum everything after the backward, for comparison).
    public var overlap = true
    /// ZeRO-1: each rank keeps the optimizer state of, and updates, a contiguous share of the
    /// parameters (whole tensors, so Muon orthogonalises whole matrices); gradients are reduced to
    /// their owner and the updated parameters broadcast from it.
    public var shardOptimizer = false
    /// Gradients of consecutive small parameters are summed together up to this many bytes; a
    /// larger parameter is summed alone, in place.
    public var bucketBytes = 8 << 20

    public init(overlap: Bool = true, shardOptimizer: Bool = false, bucketBytes: Int = 8 << 20) {
        self.overlap = overlap
        self.shardOptimizer = shardOptimizer
        self.bucketBytes = bucketBytes
    }
}

/// The gradient and parameter traffic of one data-parallel step over a `Communicator`.
///
/// Buckets hold consecutive parameters in reverse model order (the order in which the backward
/// finishes them), never more than `bucketBytes` unless a single parameter is larger, and never
/// parameters of two owners. A bucket is started once all its parameters are ready and every
/// bucket before it has started: all ranks must start collectives in the same order, and a rank
/// whose micro-batch never touched a parameter (an MoE expert) only learns that after its backward.
final class GradientSync {
    let communicator: any Communicator
    let parameters: [NamedParameter]
    let options: DataParallelOptions
    /// The rank that owns (updates) each parameter; nil when every rank updates every parameter.
    let owner: [Int]?

    struct Bucket {
        var members: [Int]
        var owner: Int?
        /// Staging for several small gradients (nil: one parameter, summed in place).
        var staging: TensorStorage?
    }
    private var buckets: [Bucket] = []
    private var bucketOf: [Int] = []
    private var waiting: [Int] = []
    private var nextBucket = 0
    private var indexOfNode: [ObjectIdentifier: Int] = [:]
    private var hadGradient: [Bool] = []

    init(communicator: any Communicator, parameters: [NamedParameter], options: DataParallelOptions) {
        self.communicator = communicator
        self.parameters = parameters
        self.options = options
        owner = options.shardOptimizer && communicator.size > 1
            ? Self.partition(parameters.map(\.parameter.count), ranks: communicator.size) : nil
        var current: [Int] = [], bytes = 0
        func close() {
            guard !current.isEmpty else { return }
            let count = current.reduce(0) { $0 + parameters[$1].parameter.count }
            buckets.append(Bucket(members: current, owner: owner?[current[0]],
                                  staging: current.count > 1 ? TensorStorage(count: count) : nil))
            current = []
            bytes = 0
        }
        for i in parameters.indices.reversed() {
            let size = parameters[i].parameter.count * 4
            if !current.isEmpty && (bytes + size > options.bucketBytes || owner?[current[0]] != owner?[i]) { close() }
            current.append(i)
            bytes += size
        }
        close()
        bucketOf = Array(repeating: 0, count: parameters.count)
        for (b, bucket) in buckets.enumerated() { for i in bucket.members { bucketOf[i] = b } }
    }

    /// Splits parameters (by element count, in order) into `ranks` contiguous shares of about
    /// equal size, whole tensors only; returns each parameter's rank.
    static func partition(_ counts: [Int], ranks: Int) -> [Int] {
        let total = max(counts.reduce(0, +), 1)
        var before = 0
        return counts.map { c in
            defer { before += c }
            return min(ranks - 1, (2 * before + c) * ranks / (2 * total))  // the share its midpoint falls in
        }
    }

    /// The parameters this rank updates.
    var ownedParameters: [NamedParameter] {
        guard let owner else { return parameters }
        return parameters.indices.filter { owner[$0] == communicator.rank }.map { parameters[$0] }
    }

    var isSharded: Bool { owner != nil }

    /// Call before the backward of this rank's last micro-batch of the step (with or without the hook).
    func beginStep() {
        waiting = buckets.map(\.members.count)
        nextBucket = 0
        hadGradient = Array(repeating: false, count: parameters.count)
        indexOfNode.removeAll(keepingCapacity: true)
        for (i, (_, p)) in parameters.enumerated() {
            if let node = p.value.node { indexOfNode[ObjectIdentifier(node)] = i }
        }
    }

    /// The backward hook: `node`'s gradient is final; start every bucket that is now complete.
    func leafReady(_ node: Node) {
        guard let i = indexOfNode[ObjectIdentifier(node)] else { return }
        waiting[bucketOf[i]] -= 1
        while nextBucket < buckets.count, waiting[nextBucket] == 0 {
            start(nextBucket)
            nextBucket += 1
        }
        communicator.progress()
    }

    private func start(_ b: Int) {
        let bucket = buckets[b]
        for i in bucket.members { hadGradient[i] = parameters[i].parameter.gradValues != nil }
        let buffer: UnsafeMutablePointer<Float>, count: Int
        if let staging = bucket.staging {
            var offset = 0
            for i in bucket.members {
                let p = parameters[i].parameter
                if let g = p.gradValues { (staging.pointer + offset).update(from: g, count: p.count) }
                else { (staging.pointer + offset).update(repeating: 0, count: p.count) }
                offset += p.count
            }
            (buffer, count) = (staging.pointer, staging.count)
        } else {
            let p = parameters[bucket.members[0]].parameter
            (buffer, count) = (p.value.node!.gradBuffer(), p.count)  // zeroed when this rank had none
        }
        if let root = bucket.owner {
            communicator.startReduceSum(buffer, count: count, root: root)
        } else {
            communicator.startAllreduceSum(buffer, count: count)
        }
    }

    /// After the backward: starts what is left, waits for all of it, and leaves each gradient
    /// summed over ranks on the ranks that update it. A parameter no rank had a gradient for ends
    /// with none (the optimizer skips it, as in one process); with a sharded optimizer the other
    /// ranks drop theirs. `scalars` (losses, token counts) are summed over ranks in the same
    /// collective as the has-a-gradient flags.
    func finishStep(summing scalars: inout [Double]) {
        while nextBucket < buckets.count {
            start(nextBucket)
            nextBucket += 1
        }
        communicator.waitAll()
        var any = hadGradient.map { $0 ? 1.0 : 0 } + scalars
        communicator.allreduceSum(&any)
        scalars = Array(any[parameters.count...])
        for bucket in buckets {
            var offset = 0
            let mine = bucket.owner.map { $0 == communicator.rank } ?? true
            for i in bucket.members {
                let p = parameters[i].parameter
                defer { offset += p.count }
                guard any[i] > 0, mine else {
                    p.zeroGrad()
                    continue
                }
                if let staging = bucket.staging {
                    p.value.node!.gradBuffer().update(from: staging.pointer + offset, count: p.count)
                }
            }
        }
        waiting = []
    }

    /// The global sum of squares from this rank's share (sharded), for gradient clipping.
    func combineSquares(_ local: Double) -> Double {
        guard isSharded else { return local }
        var v = [local]
        communicator.allreduceSum(&v)
        return v[0]
    }

    /// With a sharded optimizer: every parameter from the rank that updated it.
    func gatherParameters() {
        guard let owner else { return }
        for (i, (_, p)) in parameters.enumerated() {
            communicator.startBroadcast(p.values, count: p.count, root: owner[i])
        }
        communicator.waitAll()
    }

    /// With a sharded optimizer: the whole optimizer state on rank 0 (called on every rank; the
    /// others get an empty state). Each rank's state travels as a header (names and shapes) and
    /// its values.
    func gatherOptimizerState(_ local: OptimizerState) throws -> OptimizerState {
        struct Entry: Codable { var key: String; var shape: [Int] }
        var merged = communicator.isRoot ? local : [:]
        for r in 1..<communicator.size {
            let mine = communicator.rank == r
            let keys = mine ? local.keys.sorted() : []
            var header = mine ? try JSONEncoder().encode(keys.map { Entry(key: $0, shape: local[$0]!.shape) }) : Data()
            var values: [Float] = mine ? keys.flatMap { local[$0]!.values } : []
            var sizes = [header.count, values.count]
            sizes.withUnsafeMutableBytes { communicator.broadcast($0.baseAddress!, bytes: $0.count, root: r) }
            if !mine {
                header = Data(count: sizes[0])
                values = [Float](repeating: 0, count: sizes[1])
            }
            header.withUnsafeMutableBytes { if let base = $0.baseAddress { communicator.broadcast(base, bytes: $0.count, root: r) } }
            values.withUnsafeMutableBytes { if let base = $0.baseAddress { communicator.broadcast(base, bytes: $0.count, root: r) } }
            guard communicator.isRoot else { continue }
            var offset = 0
            for e in try JSONDecoder().decode([Entry].self, from: header) {
                let n = Shape.count(e.shape)
                merged[e.key] = StateTensor(shape: e.shape, values: Array(values[offset..<offset + n]))
                offset += n
            }
        }
        return merged
    }

    /// The part of a whole saved optimizer state that belongs to this rank's parameters.
    func ownedState(_ state: OptimizerState) -> OptimizerState {
        guard isSharded else { return state }
        let owned = Set(ownedParameters.map(\.name)), all = Set(parameters.map(\.name))
        return state.filter { key, _ in
            guard let dot = key.lastIndex(of: ".") else { return true }  // unknown: let the optimizer name it
            let name = String(key[..<dot])
            return owned.contains(name) || !all.contains(name)
        }
    }
}
