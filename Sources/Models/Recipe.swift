import Foundation
import Layers
import ToolkitSupport
import Yams

/// A model (and training) recipe: a YAML file, resolved through `extends:` and `--set` overrides.
///
/// ```yaml
/// name: rope
/// extends: gpt2            # a recipe name or path; this file's keys override it (deep merge)
/// description: ...
/// model: { ... }           # validated by ModelBuilder with key paths
/// train: { ... }           # validated by the training code
/// ```
public struct Recipe {
    /// The recipe's name (`name:` or the file name).
    public var name: String
    /// The file it was loaded from (for error messages).
    public var path: String
    public var description: String?
    /// The fully resolved `model:` block.
    public var model: [String: ConfigValue]
    /// The fully resolved `train:` block.
    public var train: [String: ConfigValue]

    static let topLevelKeys: Set<String> = ["name", "extends", "description", "model", "train"]
    /// Keys older recipes and checkpoints carry that are read and ignored (`family`: a label that
    /// nothing used; a model's HF family is decided from its components on export).
    static let ignoredKeys: Set<String> = ["family"]

    public init(name: String, path: String, description: String? = nil,
                model: [String: ConfigValue], train: [String: ConfigValue] = [:]) {
        self.name = name
        self.path = path
        self.description = description
        self.model = model
        self.train = train
    }

    // MARK: - Loading

    /// Directories searched for `<name>.yaml`: `$TOOLKIT_RECIPES`, `./Recipes`, and `Recipes/` next
    /// to the package the executable was built from.
    public static var searchDirectories: [String] {
        var dirs: [String] = []
        if let env = ProcessInfo.processInfo.environment["TOOLKIT_RECIPES"] { dirs.append(env) }
        dirs.append(FileManager.default.currentDirectoryPath + "/Recipes")
        var url = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath()
        for _ in 0..<6 {
            url.deleteLastPathComponent()
            let candidate = url.appendingPathComponent("Recipes").path
            if FileManager.default.fileExists(atPath: candidate + "/gpt2.yaml") { dirs.append(candidate); break }
        }
        return dirs
    }

    /// Resolves a recipe name (`Recipes/<name>.yaml`) or a path to a file.
    public static func locate(_ nameOrPath: String, relativeTo base: String? = nil) throws -> String {
        let fm = FileManager.default
        if nameOrPath.hasSuffix(".yaml") || nameOrPath.hasSuffix(".yml") || nameOrPath.contains("/") {
            if fm.fileExists(atPath: nameOrPath) { return nameOrPath }
            if let base {
                let rel = URL(fileURLWithPath: base).deletingLastPathComponent().appendingPathComponent(nameOrPath).path
                if fm.fileExists(atPath: rel) { return rel }
            }
            throw ToolkitError("recipe file \(nameOrPath) not found")
        }
        var dirs = searchDirectories
        if let base { dirs.insert(URL(fileURLWithPath: base).deletingLastPathComponent().path, at: 0) }
        for d in dirs {
            let p = "\(d)/\(nameOrPath).yaml"
            if fm.fileExists(atPath: p) { return p }
        }
        let known = dirs.flatMap { (try? fm.contentsOfDirectory(atPath: $0)) ?? [] }
            .filter { $0.hasSuffix(".yaml") }.map { String($0.dropLast(5)) }
        throw ToolkitError("unknown recipe '\(nameOrPath)' (looked in \(dirs.joined(separator: ", ")); known: \(Set(known).sorted().joined(separator: ", ")))")
    }

    /// The recipe an `extends:` in `file` names: a recipe name (search directories, and the
    /// including file's folder first), or a file inside the including file's folder or a search
    /// directory. Paths that leave those folders (`../../etc/passwd`) are refused; give them on the
    /// command line (`--recipe PATH`) instead.
    static func locateParent(_ name: String, of file: String) throws -> String {
        let found: String
        do { found = try locate(name, relativeTo: file) } catch let e as ToolkitError {
            throw ToolkitError("\(file): extends: \(e.message)")
        }
        let real = URL(fileURLWithPath: found).standardizedFileURL.resolvingSymlinksInPath().path
        let roots = ([URL(fileURLWithPath: file).deletingLastPathComponent().path] + searchDirectories).map {
            URL(fileURLWithPath: $0).standardizedFileURL.resolvingSymlinksInPath().path
        }
        guard roots.contains(where: { real.hasPrefix($0.hasSuffix("/") ? $0 : $0 + "/") }) else {
            throw ToolkitError("\(file): extends: '\(name)' is outside the recipe folders (\(roots.joined(separator: ", "))); "
                               + "pass it with --recipe instead")
        }
        return found
    }

    /// Loads a recipe by name or path, follows `extends:` and applies `--set key.path=value` overrides.
    public static func load(_ nameOrPath: String, overrides: [String] = []) throws -> Recipe {
        let path = try locate(nameOrPath)
        var tree = try resolveTree(path: path, chain: [])
        for o in overrides { try applyOverride(o, to: &tree, file: path) }
        return try fromTree(tree, path: path)
    }

    /// Builds a recipe from an already resolved tree (used for HF configs and checkpoints).
    public static func fromTree(_ tree: [String: ConfigValue], path: String) throws -> Recipe {
        for key in tree.keys where !topLevelKeys.contains(key) && !ignoredKeys.contains(key) {
            throw ToolkitError("\(path): \(key): unknown key (allowed: \(topLevelKeys.sorted().joined(separator: ", ")))")
        }
        func string(_ k: String) throws -> String? {
            switch tree[k] {
            case nil, .null?: return nil
            case .string(let s)?: return s
            case let v?: throw ToolkitError("\(path): \(k): expected a string, got \(v)")
            }
        }
        func map(_ k: String) throws -> [String: ConfigValue] {
            switch tree[k] {
            case nil, .null?: return [:]
            case .map(let m)?: return m
            case let v?: throw ToolkitError("\(path): \(k): expected a block of keys, got \(v)")
            }
        }
        let fileName = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        let model = try map("model")
        guard !model.isEmpty else { throw ToolkitError("\(path): model: missing (required)") }
        return Recipe(name: try string("name") ?? fileName, path: path,
                      description: try string("description"), model: model, train: try map("train"))
    }

    static func resolveTree(path: String, chain: [String]) throws -> [String: ConfigValue] {
        let canonical = URL(fileURLWithPath: path).standardizedFileURL.path
        guard !chain.contains(canonical) else {
            throw ToolkitError("\(path): extends: cycle \((chain + [canonical]).joined(separator: " → "))")
        }
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ToolkitError("\(path): cannot read: \(error.localizedDescription)")
        }
        try RecipeText.screen(text, path: path)
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch {
            throw ToolkitError("\(path): invalid YAML: \(error)")
        }
        guard let node, case .map(var tree) = try ConfigValue(yaml: node, path: path, keyPath: "") else {
            throw ToolkitError("\(path): a recipe must be a block of keys")
        }
        if let parent = tree.removeValue(forKey: "extends") {
            guard case .string(let parentName) = parent, !parentName.isEmpty else {
                throw ToolkitError("\(path): extends: expected a recipe name, got \(parent)")
            }
            let parentPath = try locateParent(parentName, of: path)
            var base = try resolveTree(path: parentPath, chain: chain + [canonical])
            base.removeValue(forKey: "name")
            base.removeValue(forKey: "description")
            tree = ConfigValue.merge(base, tree)
        }
        return tree
    }

    /// `key.path=value`, value parsed as a YAML scalar or flow collection.
    static func applyOverride(_ text: String, to tree: inout [String: ConfigValue], file: String) throws {
        guard let eq = text.firstIndex(of: "="), eq != text.startIndex else {
            throw ToolkitError("--set \(text): expected key.path=value")
        }
        let keys = text[..<eq].split(separator: ".").map(String.init)
        let raw = String(text[text.index(after: eq)...])
        try RecipeText.screen(raw, path: "--set \(keys.joined(separator: "."))")
        let value: ConfigValue
        do {
            if let node = try Yams.compose(yaml: raw) {
                value = try ConfigValue(yaml: node, path: "--set", keyPath: keys.joined(separator: "."))
            } else {
                value = .null
            }
        } catch let e as ToolkitError { throw e } catch {
            throw ToolkitError("--set \(text): invalid value: \(error)")
        }
        guard keys.allSatisfy({ !$0.isEmpty }) else { throw ToolkitError("--set \(text): empty key in path") }
        func set(_ m: inout [String: ConfigValue], _ k: ArraySlice<String>) throws {
            let head = k.first!
            if k.count == 1 {
                switch (m[head], value) {
                case (.map(let existing)?, .map(let new)):
                    m[head] = .map(ConfigValue.merge(existing, new))  // a block merges, as with extends:
                case (let old?, _) where head == "kind" && old != value:
                    m = ["kind": value]  // another kind: the block's other keys belonged to the old one
                default:
                    m[head] = value
                }
                return
            }
            var child: [String: ConfigValue] = [:]
            switch m[head] {
            case nil, .null?: break
            case .map(let existing)?: child = existing
            case let v?: throw ToolkitError("--set \(text): \(head) is \(v), not a block of keys")
            }
            try set(&child, k.dropFirst())
            m[head] = .map(child)
        }
        try set(&tree, keys[...])
    }

    // MARK: - Output

    /// The resolved recipe as YAML (no `extends:`), with every key in sorted order.
    public func resolvedYAML() -> String {
        var tree: [String: ConfigValue] = ["name": .string(name), "model": .map(model)]
        if let description { tree["description"] = .string(description) }
        if !train.isEmpty { tree["train"] = .map(train) }
        return "# Fully resolved recipe (written by toolkit)\n" + ConfigValue.map(tree).yaml(indent: 0)
    }

    /// Options for a block of `model:` (e.g. "attention"), with the file in error key paths.
    public func modelOptions() -> ComponentOptions {
        ComponentOptions(path: "\(path): model", values: model)
    }
}

extension ConfigValue {
    /// Converts a YAML node; plain scalars become int/double/bool/null when they parse as such.
    init(yaml node: Node, path: String, keyPath: String) throws {
        switch node {
        case .scalar(let s):
            if s.style == .plain, let v = ConfigValue(plainScalar: s.string) {
                self = v
                return
            }
            self = .string(s.string)
        case .sequence(let seq):
            self = .list(try seq.enumerated().map { try ConfigValue(yaml: $0.element, path: path, keyPath: "\(keyPath)[\($0.offset)]") })
        case .mapping(let m):
            var out: [String: ConfigValue] = [:]
            for (k, v) in m {
                guard let key = k.string else { throw ToolkitError("\(path): \(keyPath): keys must be strings") }
                let kp = keyPath.isEmpty ? key : "\(keyPath).\(key)"
                guard out[key] == nil else { throw ToolkitError("\(path): \(kp): duplicate key") }
                out[key] = try ConfigValue(yaml: v, path: path, keyPath: kp)
            }
            self = .map(out)
        case .alias:
            throw ToolkitError("\(path): \(keyPath): YAML aliases are not supported in recipes; use extends:")
        }
    }

    /// A plain YAML scalar as a number, bool or null, or nil for a string. Resolved here rather than
    /// by Yams' constructors, whose YAML 1.1 base-60 integers (`1:2:3:…`) trap on overflow: decimal
    /// and `0x` integers, decimal floats and `.inf`/`.nan` (which validation then refuses where a
    /// finite number is needed), `true`/`false` (and YAML 1.1's yes/no/on/off), `null`/`~`.
    init?(plainScalar text: String) {
        let lower = text.lowercased()
        switch lower {
        case "", "~", "null": self = .null; return
        case "true", "yes", "on": self = .bool(true); return
        case "false", "no", "off": self = .bool(false); return
        case ".inf", "+.inf": self = .double(.infinity); return
        case "-.inf": self = .double(-.infinity); return
        case ".nan": self = .double(.nan); return
        default: break
        }
        let digits = text.replacingOccurrences(of: "_", with: "")
        let sign = digits.first == "-" ? -1 : 1
        let unsigned = digits.first == "-" || digits.first == "+" ? String(digits.dropFirst()) : digits
        for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] where unsigned.lowercased().hasPrefix(prefix) {
            if let i = Int(unsigned.dropFirst(2), radix: radix) { self = .int(sign * i); return }
        }
        // "017" was octal to YAML 1.1 and is decimal to YAML 1.2: a string here, so that a numeric
        // key refuses it loudly instead of taking either meaning silently.
        if unsigned.count > 1, unsigned.first == "0", unsigned.allSatisfy(\.isNumber) { return nil }
        if let i = Int(digits) { self = .int(i); return }
        let isFloat = digits.unicodeScalars.allSatisfy { CharacterSet(charactersIn: "0123456789.eE+-").contains($0) }
            && digits.unicodeScalars.contains { CharacterSet.decimalDigits.contains($0) }
        if isFloat, let d = Double(digits) { self = .double(d); return }
        return nil
    }

    /// Deep merge: keys of `top` override `base`; nested blocks merge recursively, except that a
    /// block with a different `kind` replaces the base block entirely (a new component).
    static func merge(_ base: [String: ConfigValue], _ top: [String: ConfigValue]) -> [String: ConfigValue] {
        var out = base
        for (k, v) in top {
            if case .map(let b)? = base[k], case .map(let t) = v, b["kind"] == nil || t["kind"] == nil || b["kind"] == t["kind"] {
                out[k] = .map(merge(b, t))
            } else {
                out[k] = v
            }
        }
        return out
    }

    /// Block-style YAML, keys sorted.
    func yaml(indent: Int) -> String {
        let pad = String(repeating: " ", count: indent)
        switch self {
        case .map(let m):
            return m.keys.sorted().map { k -> String in
                let v = m[k]!
                switch v {
                case .map(let inner) where !inner.isEmpty: return "\(pad)\(k):\n" + v.yaml(indent: indent + 2)
                default: return "\(pad)\(k): \(v.inlineYAML)\n"
                }
            }.joined()
        default:
            return pad + inlineYAML + "\n"
        }
    }

    var inlineYAML: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d):
            var s = "\(d)"
            if !s.contains(".") && !s.contains("e") && !s.contains("n") { s += ".0" }
            return s
        case .string(let s):
            let safe = !s.isEmpty && s.allSatisfy { $0.isLetter || $0.isNumber || "-_./".contains($0) }
                && Double(s) == nil && !["true", "false", "null", "yes", "no", "on", "off", "~"].contains(s.lowercased())
            return safe ? s : "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        case .list(let l): return "[" + l.map(\.inlineYAML).joined(separator: ", ") + "]"
        case .map(let m): return "{" + m.keys.sorted().map { "\($0): \(m[$0]!.inlineYAML)" }.joined(separator: ", ") + "}"
        }
    }
}
