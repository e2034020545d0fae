import Foundation
import ToolkitSupport

/// A metric over seeds: the per-seed values (in seed order), their mean and their sample
/// standard deviation (n − 1 in the denominator; nil with fewer than two values).
public struct Aggregate: Codable, Equatable, Sendable {
    public var values: [Double]
    public var mean: Double
    public var sd: Double?

    public init(_ values: [Double]) {
        self.values = values
        let (mean, sd) = Stats.meanStd(values)
        self.mean = mean
        self.sd = values.count > 1 ? sd : nil
    }
}

/// One point of a loss curve: tokens seen, the mean loss over seeds there and its sd
/// (nil for one seed).
public struct CurvePoint: Codable, Equatable, Sendable {
    public var tokens: Double
    public var mean: Double
    public var sd: Double?

    public init(tokens: Double, mean: Double, sd: Double?) {
        self.tokens = tokens
        self.mean = mean
        self.sd = sd
    }
}

/// The train and val loss curves of one variant, averaged over its seeds.
public struct VariantCurves: Codable, Equatable, Sendable {
    public var name: String
    public var train: [CurvePoint]
    public var val: [CurvePoint]

    /// Aligns the seeds' curves by tokens seen: a point is kept at every `tokens` value that
    /// every seed logged (the common points; with equal data order and batch they are all of
    /// them), and the seeds' values there are averaged. When a seed logged the same `tokens`
    /// twice, its later row counts.
    public static func aligned(name: String, logs: [MetricsLog]) -> VariantCurves {
        VariantCurves(
            name: name,
            train: align(logs.map { $0.steps.map { ($0.tokens, $0.loss) } }),
            val: align(logs.map { $0.evals.map { ($0.tokens, $0.valLoss) } }))
    }

    static func align(_ series: [[(Int, Double)]]) -> [CurvePoint] {
        guard !series.isEmpty else { return [] }
        let maps = series.map { Dictionary($0, uniquingKeysWith: { _, later in later }) }
        var common = Set(maps[0].keys)
        for m in maps.dropFirst() { common.formIntersection(m.keys) }
        return common.sorted().map { tokens in
            let a = Aggregate(maps.compactMap { $0[tokens] })
            return CurvePoint(tokens: Double(tokens), mean: a.mean, sd: a.sd)
        }
    }
}
