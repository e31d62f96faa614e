import FoundationEssentials
import Dispatch
import DiffEdit

/// A weight source that invents every tensor a model asks for (normal values scaled by
/// 1/sqrt(fan_in); norm weights 1, biases small), deterministically from a seed, filled in
/// parallel with a counter-based generator. Used to build full-size models for benchmarks
/// without any file: create the model from it, then keep `tensors`.
/// Public (in this benchmark target) because the tests use `fillNormal` for random inputs.
public final class RandomWeightSource: WeightSource {
    public let origin = "random weights"
    public let seed: UInt64
    public private(set) var tensors: [String: Tensor] = [:]

    public init(seed: UInt64) { self.seed = seed }

    public var names: [String] { tensors.keys.sorted() }
    public func contains(_ name: String) -> Bool { tensors[name] != nil }
    public func shape(of name: String) -> [Int]? { tensors[name]?.shape }

    public func tensor(_ name: String, expectedShape: [Int]?) throws -> Tensor {
        if let t = tensors[name] { return t }
        guard let shape = expectedShape else {
            throw DiffEditError.model("\(origin): tensor \(name) requested without a shape")
        }
        let t = Tensor(shape: shape, zeroed: false)
        let isNormWeight = shape.count == 1 && name.hasSuffix("weight")
        let isBias = shape.count == 1 && !isNormWeight
        if isNormWeight {
            t.data.update(repeating: 1, count: t.count)
        } else {
            let fanIn = shape.count >= 2 ? shape.dropFirst().reduce(1, *) : 1
            let std: Float = isBias ? 0.02 : 1 / Float(max(fanIn, 1)).squareRoot()
            RandomWeightSource.fillNormal(t.data, count: t.count, std: std,
                                          seed: seed &+ RandomWeightSource.hash(name))
        }
        tensors[name] = t
        return t
    }

    /// FNV-1a of the name, so that each tensor's values depend only on (seed, name).
    static func hash(_ s: String) -> UInt64 {
        var h: UInt64 = 0xcbf29ce484222325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        return h
    }

    @inline(__always)
    static func splitmix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9e3779b97f4a7c15
        z = (z ^ (z >> 30)) &* 0xbf58476d1ce4e5b9
        z = (z ^ (z >> 27)) &* 0x94d049bb133111eb
        return z ^ (z >> 31)
    }

    /// Approximately normal values (sum of four 16-bit uniforms, variance matched) times std.
    public static func fillNormal(_ p: UnsafeMutablePointer<Float>, count: Int, std: Float, seed: UInt64) {
        let chunk = 1 << 16
        let chunks = (count + chunk - 1) / chunk
        let k = std * (12.0 / 4.0).squareRoot() / 65536
        let address = Int(bitPattern: p)   // (a pointer is not Sendable; each chunk writes its own range)
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let p = UnsafeMutablePointer<Float>(bitPattern: address)!
            let start = c * chunk, end = min(count, start + chunk)
            var state = seed ^ (UInt64(c) &* 0xd1342543de82ef95)
            for i in start..<end {
                state = state &+ 0x9e3779b97f4a7c15
                let r = splitmix(state)
                let s = Int(r & 0xffff) + Int((r >> 16) & 0xffff) + Int((r >> 32) & 0xffff) + Int(r >> 48)
                p[i] = Float(s - 2 * 65535) * k
            }
        }
    }
}
