import TensorCore
import ToolkitSupport

/// A configuration value as it comes from a recipe (YAML) or a `--set` override.
public indirect enum ConfigValue: Equatable, Sendable, CustomStringConvertible {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([ConfigValue])
    case map([String: ConfigValue])

    public var description: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return String(b)
        case .int(let i): return String(i)
        case .double(let d): return String(d)
        case .string(let s): return "'\(s)'"
        case .list(let l): return "[" + l.map(\.description).joined(separator: ", ") + "]"
        case .map(let m): return "{" + m.keys.sorted().map { "\($0): \(m[$0]!)" }.joined(separator: ", ") + "}"
        }
    }
}

/// Typed, strict access to one component's options, e.g. `model.position` of a recipe.
///
/// Every accessor marks its key used; `finish()` rejects keys nobody asked for, so a typo in a
/// recipe is an error naming the full key path instead of a silently ignored setting.
public struct ComponentOptions {
    /// Dotted key path of this block, for error messages.
    public let path: String
    public private(set) var values: [String: ConfigValue]
    private var used = Set<String>()

    public init(path: String, values: [String: ConfigValue]) {
        self.path = path
        self.values = values
    }

    private func keyPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    public func error(_ key: String, _ message: String) -> ToolkitError {
        ToolkitError("\(keyPath(key)): \(message)")
    }

    /// The component kind (`kind` key), required.
    public mutating func kind() throws -> String {
        guard let k = try optionalString("kind") else { throw error("kind", "missing (required)") }
        return k
    }

    public mutating func optionalInt(_ key: String) throws -> Int? {
        used.insert(key)
        switch values[key] {
        case nil, .null?: return nil
        case .int(let i)?: return i
        case .double(let d)? where d == d.rounded() && abs(d) < 1e15: return Int(d)
        case let v?: throw error(key, "expected an integer, got \(v)")
        }
    }

    public mutating func int(_ key: String, default d: Int) throws -> Int { try optionalInt(key) ?? d }

    /// An integer that must be present and at least `min`.
    public mutating func requiredInt(_ key: String, min: Int = 1) throws -> Int {
        guard let v = try optionalInt(key) else { throw error(key, "missing (required)") }
        guard v >= min else { throw error(key, "must be at least \(min), got \(v)") }
        return v
    }

    public mutating func optionalDouble(_ key: String) throws -> Double? {
        used.insert(key)
        switch values[key] {
        case nil, .null?: return nil
        case .int(let i)?: return Double(i)
        case .double(let d)?: return d
        case let v?: throw error(key, "expected a number, got \(v)")
        }
    }

    public mutating func double(_ key: String, default d: Double) throws -> Double { try optionalDouble(key) ?? d }

    /// A number that must be finite and greater than zero (epsilons, factors).
    public mutating func positiveFinite(_ key: String, default d: Double) throws -> Double {
        let v = try double(key, default: d)
        guard v > 0, v.isFinite else { throw error(key, "must be a positive finite number, got \(v)") }
        return v
    }

    /// An optional number that must be finite and greater than zero when given.
    public mutating func optionalPositiveFinite(_ key: String) throws -> Double? {
        guard let v = try optionalDouble(key) else { return nil }
        guard v > 0, v.isFinite else { throw error(key, "must be a positive finite number, got \(v)") }
        return v
    }

    /// A list of numbers (`[0.9, 0.95]`), or nil when absent.
    public mutating func optionalDoubles(_ key: String) throws -> [Double]? {
        used.insert(key)
        switch values[key] {
        case nil, .null?: return nil
        case .list(let l)?:
            return try l.map {
                switch $0 {
                case .int(let i): return Double(i)
                case .double(let d): return d
                default: throw error(key, "expected a list of numbers, got \(ConfigValue.list(l))")
                }
            }
        case let v?: throw error(key, "expected a list of numbers, got \(v)")
        }
    }

    /// A list of strings (`[local, global]`), or nil when absent.
    public mutating func optionalStrings(_ key: String) throws -> [String]? {
        used.insert(key)
        switch values[key] {
        case nil, .null?: return nil
        case .list(let l)?:
            return try l.map {
                guard case .string(let s) = $0 else { throw error(key, "expected a list of names, got \(ConfigValue.list(l))") }
                return s
            }
        case let v?: throw error(key, "expected a list of names, got \(v)")
        }
    }

    public mutating func optionalBool(_ key: String) throws -> Bool? {
        used.insert(key)
        switch values[key] {
        case nil, .null?: return nil
        case .bool(let b)?: return b
        case let v?: throw error(key, "expected true or false, got \(v)")
        }
    }

    public mutating func bool(_ key: String, default d: Bool) throws -> Bool { try optionalBool(key) ?? d }

    public mutating func optionalString(_ key: String) throws -> String? {
        used.insert(key)
        switch values[key] {
        case nil, .null?: return nil
        case .string(let s)?: return s
        case let v?: throw error(key, "expected a string, got \(v)")
        }
    }

    /// A string restricted to `allowed`.
    public mutating func choice(_ key: String, _ allowed: [String], default d: String) throws -> String {
        let v = try optionalString(key) ?? d
        guard allowed.contains(v) else { throw error(key, "'\(v)' is not one of \(allowed.joined(separator: ", "))") }
        return v
    }

    /// The raw value of a key that takes several forms (read by its own parser), or nil when absent.
    public mutating func value(_ key: String) -> ConfigValue? {
        used.insert(key)
        if case .null? = values[key] { return nil }
        return values[key]
    }

    /// A nested block, or nil when absent.
    public mutating func nested(_ key: String) throws -> ComponentOptions? {
        used.insert(key)
        switch values[key] {
        case nil, .null?: return nil
        case .map(let m)?: return ComponentOptions(path: keyPath(key), values: m)
        case let v?: throw error(key, "expected a block of keys, got \(v)")
        }
    }

    /// Throws on any key that no accessor asked for.
    public func finish() throws {
        let unknown = Set(values.keys).subtracting(used).sorted()
        if let first = unknown.first {
            throw error(first, "unknown key (allowed here: \(used.sorted().joined(separator: ", ")))")
        }
    }
}

/// Model-wide facts a component needs to build itself.
public final class ComponentContext {
    public let hiddenSize: Int
    public let heads: Int
    public let kvHeads: Int
    public let headDim: Int
    public let layers: Int
    public let contextLength: Int
    /// Standard deviation of the normal initialiser (GPT-2: 0.02).
    public let initStd: Float
    /// Seeded generator that every component draws its initial values from, in build order.
    public var rng: SplitMix64
    /// False: weights are left at zero (shape-only builds for counting parameters quickly).
    public let initializeWeights: Bool

    public init(hiddenSize: Int, heads: Int, kvHeads: Int, headDim: Int, layers: Int, contextLength: Int,
                initStd: Float = 0.02, seed: UInt64 = 0, initializeWeights: Bool = true) {
        self.initializeWeights = initializeWeights
        self.hiddenSize = hiddenSize
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.layers = layers
        self.contextLength = contextLength
        self.initStd = initStd
        self.rng = SplitMix64(seed: seed)
    }

    /// N(0, initStd²) weights; `residual` scales by 1/√(2·layers) (GPT-2's residual projections).
    public func normal(_ shape: [Int], residual: Bool = false) -> Tensor {
        guard initializeWeights else { return Tensor(zeros: shape) }
        let std = residual ? initStd / Float(2 * layers).squareRoot() : initStd
        return Tensor.randn(shape, std: std, rng: &rng)
    }
}

/// Name → factory tables for interchangeable components. Adding a variant is one file plus one
/// line in the table (`Components.swift`).
public struct ComponentRegistry<Product> {
    public typealias Factory = (inout ComponentOptions, ComponentContext) throws -> Product
    public let what: String
    public private(set) var factories: [String: Factory]

    public init(_ what: String, _ factories: [String: Factory]) {
        self.what = what
        self.factories = factories
    }

    public var kinds: [String] { factories.keys.sorted() }

    public mutating func register(_ kind: String, _ factory: @escaping Factory) { factories[kind] = factory }

    /// Builds the component named by `options`' `kind`, then rejects unknown keys.
    public func make(_ options: ComponentOptions, _ context: ComponentContext) throws -> Product {
        var o = options
        let kind = try o.kind()
        guard let f = factories[kind] else {
            throw o.error("kind", "unknown \(what) '\(kind)' (known: \(kinds.joined(separator: ", ")))")
        }
        let product = try f(&o, context)
        try o.finish()
        return product
    }
}
