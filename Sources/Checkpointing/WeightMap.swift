import ToolkitSupport

/// A declarative mapping between a checkpoint's tensor names (e.g. Hugging Face GPT-2) and the
/// toolkit's canonical names (the HF Llama/Qwen layout), with shape transforms.
///
/// Rules use templates with `{L}` (layer) and `{E}` (expert) placeholders, which match decimal
/// indices (`0`, `17`; no leading zeros) and must be followed by a non-digit. A rule maps one or
/// more source templates to one or more target templates through a `Transform`. Import is strict:
/// a source key no rule or ignore-pattern matches, a key matched twice, a missing partner of a
/// multi-key rule, or a shape a transform cannot apply to is an error naming the tensor; with
/// `expected` shapes, missing, unexpected and mis-shaped canonical tensors are errors too.
/// `export` is the exact inverse, so import ∘ export is bitwise the identity.
public struct WeightMap: Sendable {
    /// How source tensors become target tensors (import direction).
    public enum Transform: Sendable, Equatable {
        /// One source, one target, values unchanged.
        case identity
        /// One 2-D source `[r, c]`, one target `[c, r]`.
        case transpose
        /// One source, n targets: equal consecutive slices along dim 0 (after transposing a 2-D
        /// source when `transposeFirst`, as for GPT-2's Conv1D `c_attn` weight).
        case splitRows(transposeFirst: Bool)
        /// n sources, one target: concatenation along dim 0 (trailing dims must agree; the
        /// inverse splits into n equal parts).
        case concatRows
        /// One source stacking every expert along dim 0 (gpt-oss's `experts.gate_up_proj`
        /// `[E, H, 2I]`), n targets per expert: templates with an `{E}` the source lacks. With
        /// `interleaved`, target t takes the last axis's entries t, t + n, t + 2n, … (gate = 0::2,
        /// up = 1::2); with `transpose`, each expert's 2-D part is transposed (`[H, I]` → `[I, H]`).
        /// The inverse interleaves and stacks experts 0..<E again.
        case unstackExperts(interleaved: Bool, transpose: Bool)
    }

    public struct Rule: Sendable {
        /// Source (checkpoint) templates, without any prefix alias.
        public var source: [String]
        /// Canonical templates.
        public var target: [String]
        public var transform: Transform

        public init(_ source: String, _ target: String, _ transform: Transform = .identity) {
            self.init(source: [source], target: [target], transform: transform)
        }

        public init(source: [String], target: [String], transform: Transform) {
            self.source = source
            self.target = target
            self.transform = transform
        }
    }

    /// Prefixes stripped from source keys on import (first match wins), e.g. `transformer.`.
    public var prefixAliases: [String]
    /// Prefix put in front of every source name on export.
    public var exportPrefix: String
    public var rules: [Rule]
    /// Source templates of tensors to drop on import (buffers such as `h.{L}.attn.bias`).
    public var ignored: [String]
    /// Source keys that duplicate a canonical tensor (tied `lm_head.weight` → embeddings): on
    /// import they must equal that tensor and are dropped; on export they are not written.
    public var tiedDuplicates: [String: String]

    private let compiledRules: [(source: [Template], target: [Template])]
    private let compiledIgnored: [Template]

    /// Builds and checks a map: templates must be well-formed, the targets of a rule must use
    /// the same placeholders as its sources (so both directions are determined), and the arity
    /// must fit the transform.
    public init(
        prefixAliases: [String] = [], exportPrefix: String = "", rules: [Rule],
        ignored: [String] = [], tiedDuplicates: [String: String] = [:]
    ) throws {
        self.prefixAliases = prefixAliases
        self.exportPrefix = exportPrefix
        self.rules = rules
        self.ignored = ignored
        self.tiedDuplicates = tiedDuplicates
        var compiled: [(source: [Template], target: [Template])] = []
        for rule in rules {
            let s = try rule.source.map(Template.init)
            let t = try rule.target.map(Template.init)
            let arity: (Int, Int)? =
                switch rule.transform {
                case .identity, .transpose: (1, 1)
                case .splitRows: s.count == 1 && t.count >= 1 ? (1, t.count) : nil
                case .concatRows: t.count == 1 && s.count >= 1 ? (s.count, 1) : nil
                case .unstackExperts: s.count == 1 && t.count >= 1 ? (1, t.count) : nil
                }
            guard let arity, arity == (s.count, t.count) else {
                throw ToolkitError(
                    "WeightMap: rule \(rule.source) → \(rule.target) has the wrong number of "
                        + "templates for \(rule.transform)")
            }
            let names = Set(s[0].placeholders)
            if case .unstackExperts = rule.transform {
                guard !names.contains("E"), t.allSatisfy({ Set($0.placeholders) == names.union(["E"]) }) else {
                    throw ToolkitError("WeightMap: rule \(rule.source) → \(rule.target) must add {E} to its source's placeholders")
                }
                compiled.append((s, t))
                continue
            }
            for tpl in s + t where Set(tpl.placeholders) != names {
                throw ToolkitError(
                    "WeightMap: template '\(tpl.text)' must use the placeholders \(names.sorted()) "
                        + "of its rule")
            }
            compiled.append((s, t))
        }
        compiledRules = compiled
        compiledIgnored = try ignored.map(Template.init)
    }

    // MARK: - Import

    /// Maps checkpoint tensors to canonical tensors.
    ///
    /// - Parameters:
    ///   - tensors: the checkpoint, by source name.
    ///   - expected: canonical names and shapes the model needs; when given, the result must
    ///     match it exactly, except for names in `allowMissing`.
    public func importTensors(
        _ tensors: [String: HostTensor], expected: [String: [Int]]? = nil,
        allowMissing: Set<String> = []
    ) throws -> [String: HostTensor] {
        // 1. Strip aliases, drop ignored keys, set aside tied duplicates.
        var stripped: [String: (original: String, tensor: HostTensor)] = [:]
        var duplicates: [(source: String, canonical: String, tensor: HostTensor)] = []
        for (key, tensor) in tensors {
            let name = stripAlias(key)
            if compiledIgnored.contains(where: { $0.match(name) != nil }) { continue }
            if let canonical = tiedDuplicates[name] {
                duplicates.append((key, canonical, tensor))
                continue
            }
            if let other = stripped[name] {
                throw ToolkitError(
                    "checkpoint has both '\(other.original)' and '\(key)' for the same tensor")
            }
            stripped[name] = (key, tensor)
        }
        // 2. Assign every key to exactly one (rule, source slot, bindings).
        let groups = try groupByRule(Array(stripped.keys), sourceSide: true) {
            stripped[$0]?.original ?? $0
        }
        // 3. Apply the transforms.
        var out: [String: HostTensor] = [:]
        for (group, slots) in groups.sorted(by: { $0.key < $1.key }) {
            let (sourceTemplates, targetTemplates) = compiledRules[group.rule]
            var inputs: [(name: String, tensor: HostTensor)] = []
            for (slot, tpl) in sourceTemplates.enumerated() {
                let name = tpl.instantiate(group.bindings)
                guard slots[slot] != nil, let entry = stripped[name] else {
                    let present = slots.values.sorted().first ?? ""
                    throw ToolkitError(
                        "missing tensor '\(exportPrefix)\(name)' (needed together with '\(present)')"
                    )
                }
                inputs.append((entry.original, entry.tensor))
            }
            var targets: [String], results: [HostTensor]
            if case .unstackExperts(let interleaved, let transpose) = rules[group.rule].transform {
                let perExpert = try Self.unstack(inputs[0], parts: targetTemplates.count, interleaved: interleaved, transpose: transpose)
                (targets, results) = ([], [])
                for (e, parts) in perExpert.enumerated() {
                    var b = group.bindings
                    _ = b.bind("E", e)
                    targets += targetTemplates.map { $0.instantiate(b) }
                    results += parts
                }
            } else {
                targets = targetTemplates.map { $0.instantiate(group.bindings) }
                results = try Self.apply(rules[group.rule].transform, to: inputs, targets: targets)
            }
            for (name, tensor) in zip(targets, results) {
                guard out[name] == nil else {
                    throw ToolkitError("canonical tensor '\(name)' is produced by two rules")
                }
                out[name] = tensor
            }
        }
        // 4. Tied duplicates must equal what they duplicate.
        for d in duplicates {
            guard let t = out[d.canonical] else {
                throw ToolkitError(
                    "tensor '\(d.source)' is tied to '\(d.canonical)', which the checkpoint lacks")
            }
            guard t.bitwiseEqual(d.tensor) else {
                throw ToolkitError(
                    "tensor '\(d.source)' differs from '\(d.canonical)' but the model ties them")
            }
        }
        if let expected { try Self.verify(out, expected: expected, allowMissing: allowMissing) }
        return out
    }

    /// Checks canonical tensors against the names and shapes a model expects: every expected
    /// name present (unless in `allowMissing`), no unexpected names, equal shapes.
    public static func verify(
        _ tensors: [String: HostTensor], expected: [String: [Int]],
        allowMissing: Set<String> = []
    ) throws {
        let missing = expected.keys.filter { tensors[$0] == nil && !allowMissing.contains($0) }
        if !missing.isEmpty {
            let list = missing.sorted()
            throw ToolkitError(
                "missing tensor '\(list[0])'"
                    + (list.count > 1
                        ? " (and \(list.count - 1) more: \(list.dropFirst().prefix(5).joined(separator: ", ")))"
                        : ""))
        }
        let unexpected = tensors.keys.filter { expected[$0] == nil }.sorted()
        if let first = unexpected.first {
            throw ToolkitError(
                "unexpected tensor '\(first)'"
                    + (unexpected.count > 1 ? " (and \(unexpected.count - 1) more)" : ""))
        }
        for name in tensors.keys.sorted() {
            if let shape = tensors[name]?.shape, let want = expected[name], shape != want {
                throw ToolkitError("tensor '\(name)' has shape \(shape), expected \(want)")
            }
        }
    }

    // MARK: - Export

    /// Maps canonical tensors back to checkpoint names (with `exportPrefix`), inverting each
    /// rule's transform. Every canonical name must be covered by a rule.
    public func exportTensors(_ tensors: [String: HostTensor]) throws -> [String: HostTensor] {
        var groups = try groupByRule(Array(tensors.keys), sourceSide: false) { $0 }
        var out: [String: HostTensor] = [:]
        // Stacked experts: every expert of one (rule, layer) becomes one source tensor.
        var stacks: [GroupKey: [Int: Bindings]] = [:]
        for group in groups.keys {
            guard case .unstackExperts = rules[group.rule].transform, let e = group.bindings["E"] else { continue }
            var b = group.bindings
            b.pairs.removeAll { $0.0 == "E" }
            stacks[GroupKey(rule: group.rule, bindings: b), default: [:]][e] = group.bindings
            groups[group] = nil
        }
        for (key, experts) in stacks.sorted(by: { $0.key < $1.key }) {
            guard case .unstackExperts(let interleaved, let transpose) = rules[key.rule].transform else { continue }
            let (sourceTemplates, targetTemplates) = compiledRules[key.rule]
            let source = exportPrefix + sourceTemplates[0].instantiate(key.bindings)
            guard experts.keys.sorted() == Array(0..<experts.count) else {
                throw ToolkitError("'\(source)': experts \(experts.keys.sorted()) are not 0..<\(experts.count)")
            }
            let parts = try (0..<experts.count).map { e in
                try targetTemplates.map { tpl -> (name: String, tensor: HostTensor) in
                    let name = tpl.instantiate(experts[e]!)
                    guard let t = tensors[name] else { throw ToolkitError("missing canonical tensor '\(name)' needed for export") }
                    return (name, t)
                }
            }
            out[source] = try Self.stack(parts, interleaved: interleaved, transpose: transpose, name: source)
        }
        for (group, _) in groups.sorted(by: { $0.key < $1.key }) {
            let (sourceTemplates, targetTemplates) = compiledRules[group.rule]
            var inputs: [(name: String, tensor: HostTensor)] = []
            for tpl in targetTemplates {
                let name = tpl.instantiate(group.bindings)
                guard let t = tensors[name] else {
                    throw ToolkitError("missing canonical tensor '\(name)' needed for export")
                }
                inputs.append((name, t))
            }
            let sources = sourceTemplates.map { exportPrefix + $0.instantiate(group.bindings) }
            let inverse: Transform =
                switch rules[group.rule].transform {
                case .identity: .identity
                case .transpose: .transpose
                case .splitRows: .concatRows
                case .concatRows: .splitRows(transposeFirst: false)
                case .unstackExperts: preconditionFailure("stacked experts are exported above")
                }
            var results = try Self.apply(inverse, to: inputs, targets: sources)
            if case .splitRows(transposeFirst: true) = rules[group.rule].transform {
                results = try results.map { try Self.transposed($0, name: sources[0]) }
            }
            for (name, tensor) in zip(sources, results) {
                guard out[name] == nil else {
                    throw ToolkitError("checkpoint tensor '\(name)' is produced by two rules")
                }
                out[name] = tensor
            }
        }
        return out
    }

    // MARK: - Canonical key enumeration

    /// All canonical names the rules produce for layers `0..<layers` and experts `0..<experts`
    /// with, for each, the index of the rule producing it (for table self-checks).
    public func canonicalNames(layers: Int, experts: Int = 0) -> [(name: String, rule: Int)] {
        var out: [(String, Int)] = []
        for (r, rule) in compiledRules.enumerated() {
            for tpl in rule.target {
                for b in tpl.allBindings(layers: layers, experts: experts) {
                    out.append((tpl.instantiate(b), r))
                }
            }
        }
        return out
    }

    /// Assigns every name to exactly one (rule, template slot, bindings), matching source
    /// templates (import) or target templates (export); `display` gives the name for errors.
    private func groupByRule(
        _ names: [String], sourceSide: Bool, display: (String) -> String
    ) throws -> [GroupKey: [Int: String]] {
        var groups: [GroupKey: [Int: String]] = [:]
        for name in names.sorted() {
            var hits: [(rule: Int, slot: Int, bindings: Bindings)] = []
            for (r, rule) in compiledRules.enumerated() {
                for (slot, tpl) in (sourceSide ? rule.source : rule.target).enumerated() {
                    if let b = tpl.match(name) { hits.append((r, slot, b)) }
                }
            }
            guard let hit = hits.first else {
                throw ToolkitError(
                    sourceSide
                        ? "unexpected tensor '\(display(name))': no weight-map rule matches it"
                        : "canonical tensor '\(name)' has no weight-map rule for export")
            }
            guard hits.count == 1 else {
                throw ToolkitError(
                    "tensor '\(display(name))' matches \(hits.count) weight-map rules (table error)"
                )
            }
            groups[GroupKey(rule: hit.rule, bindings: hit.bindings), default: [:]][hit.slot] = name
        }
        return groups
    }

    private func stripAlias(_ key: String) -> String {
        for p in prefixAliases where !p.isEmpty && key.hasPrefix(p) {
            return String(key.dropFirst(p.count))
        }
        return key
    }
}

// MARK: - Transforms

extension WeightMap {
    static func apply(
        _ transform: Transform, to inputs: [(name: String, tensor: HostTensor)], targets: [String]
    ) throws -> [HostTensor] {
        switch transform {
        case .identity:
            return [inputs[0].tensor]
        case .transpose:
            return [try transposed(inputs[0].tensor, name: inputs[0].name)]
        case .splitRows(let transposeFirst):
            var t = inputs[0].tensor
            if transposeFirst { t = try transposed(t, name: inputs[0].name) }
            return try splitRows(t, parts: targets.count, name: inputs[0].name)
        case .concatRows:
            return [try concatRows(inputs)]
        case .unstackExperts:
            // Its targets depend on the expert count of the tensor: importTensors and exportTensors
            // name them and call unstack / stack themselves.
            preconditionFailure("unstackExperts is applied by importTensors and exportTensors")
        }
    }

    /// `[E, …, C]` → for each expert, `parts` tensors (see `Transform.unstackExperts`).
    static func unstack(_ input: (name: String, tensor: HostTensor), parts n: Int, interleaved: Bool, transpose: Bool) throws
        -> [[HostTensor]]
    {
        let t = input.tensor
        guard t.shape.count >= 2, let c = t.shape.last, c % n == 0, !(transpose && t.shape.count != 3),
              n == 1 || interleaved else {
            throw ToolkitError("tensor '\(input.name)' has shape \(t.shape); cannot split it into experts × \(n) parts"
                               + (transpose ? " of 2-D matrices" : ""))
        }
        let experts = t.shape[0], per = t.count / max(experts, 1), rows = per / c
        var shape = Array(t.shape.dropFirst())
        shape[shape.count - 1] = c / n
        return try (0..<experts).map { e in
            try (0..<n).map { part in
                var values = [Float](repeating: 0, count: per / n)
                for r in 0..<rows {
                    for j in 0..<(c / n) { values[r * (c / n) + j] = t.values[e * per + r * c + j * n + part] }
                }
                let piece = HostTensor(shape: shape, values: values)
                return transpose ? try transposed(piece, name: input.name) : piece
            }
        }
    }

    /// The inverse of `unstack`: `parts[e][t]` → `[E, …, C]`.
    static func stack(_ parts: [[(name: String, tensor: HostTensor)]], interleaved: Bool, transpose: Bool, name: String) throws
        -> HostTensor
    {
        let n = parts[0].count
        let pieces = try parts.map { expert in try expert.map { transpose ? try transposed($0.tensor, name: $0.name) : $0.tensor } }
        let shape = pieces[0][0].shape
        guard pieces.allSatisfy({ $0.allSatisfy { $0.shape == shape } }), let w = shape.last else {
            throw ToolkitError("'\(name)': the experts' tensors differ in shape")
        }
        let per = pieces[0][0].count, rows = per / max(w, 1), c = w * n
        var values = [Float](repeating: 0, count: parts.count * per * n)
        for (e, expert) in pieces.enumerated() {
            for (part, p) in expert.enumerated() {
                for r in 0..<rows { for j in 0..<w { values[e * per * n + r * c + j * n + part] = p.values[r * w + j] } }
            }
        }
        var full = shape
        full[full.count - 1] = c
        return HostTensor(shape: [parts.count] + full, values: values)
    }

    static func transposed(_ t: HostTensor, name: String) throws -> HostTensor {
        guard t.shape.count == 2 else {
            throw ToolkitError("tensor '\(name)' has shape \(t.shape); transpose needs 2-D")
        }
        let (r, c) = (t.shape[0], t.shape[1])
        let values = [Float](unsafeUninitializedCapacity: r * c) { out, n in
            t.values.withUnsafeBufferPointer { src in
                // Blocked so both the reads and the writes stay in cache.
                let bs = 32
                for i0 in stride(from: 0, to: r, by: bs) {
                    for j0 in stride(from: 0, to: c, by: bs) {
                        for i in i0..<min(i0 + bs, r) {
                            for j in j0..<min(j0 + bs, c) { out[j &* r &+ i] = src[i &* c &+ j] }
                        }
                    }
                }
            }
            n = r * c
        }
        return HostTensor(shape: [c, r], values: values)
    }

    static func splitRows(_ t: HostTensor, parts: Int, name: String) throws -> [HostTensor] {
        guard let rows = t.shape.first, rows % parts == 0 else {
            throw ToolkitError(
                "tensor '\(name)' has shape \(t.shape); cannot split dim 0 into \(parts) equal parts"
            )
        }
        var shape = t.shape
        shape[0] = rows / parts
        let n = t.count / parts
        return (0..<parts).map { p in
            HostTensor(shape: shape, values: Array(t.values[(p * n)..<((p + 1) * n)]))
        }
    }

    static func concatRows(_ inputs: [(name: String, tensor: HostTensor)]) throws -> HostTensor {
        let first = inputs[0]
        guard !first.tensor.shape.isEmpty else {
            throw ToolkitError("tensor '\(first.name)' is a scalar; cannot concatenate rows")
        }
        var rows = 0
        for (name, t) in inputs {
            guard t.shape.count == first.tensor.shape.count,
                t.shape.dropFirst() == first.tensor.shape.dropFirst()
            else {
                throw ToolkitError(
                    "tensor '\(name)' has shape \(t.shape), incompatible with '\(first.name)' "
                        + "\(first.tensor.shape) for row concatenation")
            }
            rows += t.shape[0]
        }
        var shape = first.tensor.shape
        shape[0] = rows
        var values: [Float] = []
        values.reserveCapacity(inputs.reduce(0) { $0 + $1.tensor.count })
        for (_, t) in inputs { values.append(contentsOf: t.values) }
        return HostTensor(shape: shape, values: values)
    }
}

// MARK: - Templates

/// Placeholder values, e.g. `["L": 3, "E": 7]`, in a canonical (sorted) form.
struct Bindings: Hashable, Comparable, Sendable {
    var pairs: [(String, Int)] = []

    static func == (a: Bindings, b: Bindings) -> Bool {
        a.pairs.elementsEqual(b.pairs) { $0 == $1 }
    }

    func hash(into h: inout Hasher) {
        for (k, v) in pairs {
            h.combine(k)
            h.combine(v)
        }
    }

    static func < (a: Bindings, b: Bindings) -> Bool {
        a.pairs.lexicographicallyPrecedes(b.pairs) { $0.1 != $1.1 ? $0.1 < $1.1 : $0.0 < $1.0 }
    }

    subscript(key: String) -> Int? { pairs.first { $0.0 == key }?.1 }

    mutating func bind(_ key: String, _ value: Int) -> Bool {
        if let v = self[key] { return v == value }
        pairs.append((key, value))
        pairs.sort { $0.0 < $1.0 }
        return true
    }
}

struct GroupKey: Hashable, Comparable, Sendable {
    var rule: Int
    var bindings: Bindings
    static func < (a: GroupKey, b: GroupKey) -> Bool {
        a.rule != b.rule ? a.rule < b.rule : a.bindings < b.bindings
    }
}

/// A name template such as `h.{L}.attn.c_attn.weight`.
struct Template: Sendable {
    enum Part: Sendable {
        case literal([UInt8])
        case placeholder(String)
    }

    let text: String
    let parts: [Part]

    var placeholders: [String] {
        parts.compactMap { if case .placeholder(let p) = $0 { p } else { nil } }
    }

    init(_ text: String) throws {
        self.text = text
        var parts: [Part] = []
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "{") {
            guard let close = rest[open...].firstIndex(of: "}") else {
                throw ToolkitError("WeightMap: unclosed '{' in template '\(text)'")
            }
            let name = String(rest[rest.index(after: open)..<close])
            guard !name.isEmpty, name.allSatisfy({ $0.isUppercase }) else {
                throw ToolkitError("WeightMap: invalid placeholder '{\(name)}' in '\(text)'")
            }
            if open > rest.startIndex { parts.append(.literal(Array(rest[..<open].utf8))) }
            if case .placeholder = parts.last {
                throw ToolkitError("WeightMap: adjacent placeholders in '\(text)'")
            }
            parts.append(.placeholder(name))
            rest = rest[rest.index(after: close)...]
            if let next = rest.utf8.first, (48...57).contains(next) {
                throw ToolkitError("WeightMap: placeholder followed by a digit in '\(text)'")
            }
        }
        if !rest.isEmpty { parts.append(.literal(Array(rest.utf8))) }
        self.parts = parts
    }

    /// The placeholder values if `name` matches, else nil.
    func match(_ name: String) -> Bindings? {
        var b = Bindings()
        let bytes = Array(name.utf8)
        var i = 0
        for part in parts {
            switch part {
            case .literal(let lit):
                guard bytes.count - i >= lit.count, bytes[i..<(i + lit.count)].elementsEqual(lit)
                else { return nil }
                i += lit.count
            case .placeholder(let p):
                var j = i
                while j < bytes.count, (48...57).contains(bytes[j]) { j += 1 }
                // At least one digit, no leading zero, and a sane length.
                guard j > i, j - i <= 9, bytes[i] != 48 || j - i == 1 else { return nil }
                var v = 0
                for d in bytes[i..<j] { v = v * 10 + Int(d - 48) }
                guard b.bind(p, v) else { return nil }
                i = j
            }
        }
        return i == bytes.count ? b : nil
    }

    func instantiate(_ b: Bindings) -> String {
        var s = ""
        for part in parts {
            switch part {
            case .literal(let lit): s += String(decoding: lit, as: UTF8.self)
            case .placeholder(let p): s += String(b[p] ?? 0)
            }
        }
        return s
    }

    func allBindings(layers: Int, experts: Int) -> [Bindings] {
        var result = [Bindings()]
        for p in Set(placeholders).sorted() {
            let n = p == "E" ? experts : layers
            result = result.flatMap { b in
                (0..<n).map { v in
                    var c = b
                    _ = c.bind(p, v)
                    return c
                }
            }
        }
        return result
    }
}
