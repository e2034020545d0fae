import TensorCore

/// A component with parameters and children, named with HF-compatible checkpoint keys.
///
/// `visit` reports direct parameters and children under their keys; it is hand-written (3–8
/// lines per module) so that names are explicit and no reflection runs in production.
public protocol Module: AnyObject {
    func visit(_ v: inout ModuleVisitor)
}

/// Collects dotted parameter names depth-first.
public struct ModuleVisitor {
    var prefix: [String] = []
    var seen = Set<ObjectIdentifier>()
    public private(set) var parameters: [(name: String, parameter: Parameter)] = []

    public init() {}

    /// A direct parameter under `key`. A parameter reached twice (tied) keeps its first name.
    public mutating func parameter(_ key: String, _ p: Parameter) {
        guard seen.insert(ObjectIdentifier(p)).inserted else { return }
        parameters.append(((prefix + [key]).joined(separator: "."), p))
    }

    /// An optional parameter.
    public mutating func parameter(_ key: String, _ p: Parameter?) {
        if let p { parameter(key, p) }
    }

    /// A child module under `key`.
    public mutating func child(_ key: String, _ m: (any Module)?) {
        guard let m else { return }
        prefix.append(key)
        m.visit(&self)
        prefix.removeLast()
    }

    /// A list of children, named `key.0`, `key.1`, …
    public mutating func children(_ key: String, _ ms: [any Module]) {
        for (i, m) in ms.enumerated() { child("\(key).\(i)", m) }
    }
}

extension Module {
    /// Every parameter once, with its dotted checkpoint name, in visiting order.
    public func namedParameters() -> [(name: String, parameter: Parameter)] {
        var v = ModuleVisitor()
        visit(&v)
        return v.parameters
    }

    /// Parameters by name.
    public func parameterDictionary() -> [String: Parameter] {
        Dictionary(namedParameters().map { ($0.name, $0.parameter) }, uniquingKeysWith: { a, _ in a })
    }

    /// Total number of scalars in all (deduplicated) parameters.
    public var parameterCount: Int { namedParameters().reduce(0) { $0 + $1.parameter.count } }

    /// Zeroes every parameter's gradient.
    public func zeroGrad() { for (_, p) in namedParameters() { p.zeroGrad() } }
}
