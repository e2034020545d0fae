import Foundation
import Layers
import Optimizers
import TensorCore

/// A minimal reader for the F32 tensors of a safetensors file (test-only; the Checkpointing
/// target owns the real reader).
struct SafetensorsF32 {
    var tensors: [String: (shape: [Int], values: [Float])] = [:]

    enum ReadError: Error { case malformed(String) }

    init(url: URL) throws {
        let data = try Data(contentsOf: url)
        guard data.count >= 8 else {
            throw ReadError.malformed("\(url.path): shorter than 8 bytes")
        }
        let headerSize = data.prefix(8).enumerated().reduce(0) {
            $0 | Int($1.element) << (8 * $1.offset)
        }
        guard 8 + headerSize <= data.count,
            let header = try JSONSerialization.jsonObject(
                with: data.subdata(in: 8..<8 + headerSize))
                as? [String: Any]
        else { throw ReadError.malformed("\(url.path): bad header") }
        let base = 8 + headerSize
        for (key, value) in header where key != "__metadata__" {
            guard let entry = value as? [String: Any], entry["dtype"] as? String == "F32",
                let shape = entry["shape"] as? [Int], let offsets = entry["data_offsets"] as? [Int],
                offsets.count == 2, base + offsets[1] <= data.count,
                offsets[1] - offsets[0] == 4 * shape.reduce(1, *)
            else { throw ReadError.malformed("\(url.path): tensor '\(key)'") }
            let bytes = data.subdata(in: base + offsets[0]..<base + offsets[1])
            let values = bytes.withUnsafeBytes { raw in
                (0..<raw.count / 4).map {
                    Float(bitPattern: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))
                }
            }
            tensors[key] = (shape, values)
        }
    }

    func tensor(_ key: String) throws -> Tensor {
        guard let t = tensors[key] else { throw ReadError.malformed("missing tensor '\(key)'") }
        return try Tensor(shape: t.shape, values: t.values)
    }

    func values(_ key: String) throws -> [Float] {
        guard let t = tensors[key] else { throw ReadError.malformed("missing tensor '\(key)'") }
        return t.values
    }

    static func fixture() throws -> SafetensorsF32 {
        guard
            let url = Bundle.module.url(
                forResource: "Fixtures/optimizers", withExtension: "safetensors")
        else { throw ReadError.malformed("fixture optimizers.safetensors not in the test bundle") }
        return try SafetensorsF32(url: url)
    }
}

/// The fixture problem `L(W, b) = mean((X·W + b − Y)²)`, X [32,16], W [16,8] (in, out), b [8].
final class RegressionProblem {
    let x: Tensor, y: Tensor
    let w: Parameter, b: Parameter

    init(_ file: SafetensorsF32) throws {
        x = try file.tensor("X")
        y = try file.tensor("Y")
        w = Parameter(try file.tensor("W0"))
        b = Parameter(try file.tensor("b0"))
    }

    var named: [NamedParameter] { [("W", w), ("b", b)] }

    /// Zeroes the gradients, evaluates the loss and back-propagates; returns the loss.
    func lossAndGradients() throws -> Float {
        w.zeroGrad()
        b.zeroGrad()
        let residual = try (try x.matmul(w.value) + b.value) - y
        let loss = residual.square().mean()
        try loss.backward()
        return loss.item()
    }
}

func values(_ p: Parameter) -> [Float] { p.value.scalars }

func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Double {
    precondition(a.count == b.count, "count \(a.count) vs \(b.count)")
    return zip(a, b).reduce(0) { max($0, Double(abs($1.0 - $1.1))) }
}
