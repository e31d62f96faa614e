import FoundationEssentials
import Glibc

/// A seeded random generator that reproduces PyTorch's CPU generator: `RNG(seed: s).normal(shape)`
/// gives the values of `torch.randn(shape, generator=torch.Generator().manual_seed(s))` (float32), so
/// `--seed` means the same noise as a diffusers pipeline run on the CPU with that seed.
///
/// - Engine: MT19937 seeded like `at::mt19937` (state[0] = seed & 0xffffffff, Knuth's initialisation).
/// - Uniform float: the low 24 bits of one 32-bit draw times 2^-24 (`at::uniform_real_distribution<float>`).
/// - Tensors of >= 16 values (`normal_fill`): all uniforms first, then Box-Muller on blocks of 16
///   (u1 = 1 - data[j], u2 = data[j+8]; data[j] = r cos, data[j+8] = r sin, r = sqrt(-2 log u1),
///   theta = 2 pi u2); when the count is not a multiple of 16 the last 16 values are drawn and
///   transformed again. Float math here is glibc's, torch's AVX2 path uses avx_mathfun: values agree to
///   about 1e-6 relative, and are bit-identical run to run and for the same seed.
/// - Fewer than 16 values: `at::normal_distribution<double>` (53-bit uniforms from two draws,
///   r = sqrt(-2 log1p(-u2)), theta = 2 pi u1, returning r cos and caching r sin for the next value).
public struct RNG: Sendable {
    private var state = [UInt32](repeating: 0, count: 624)
    private var next = 0
    private var left = 1
    private var cachedNormal: Double? = nil
    public let seed: UInt64

    public init(seed: UInt64) {
        self.seed = seed
        state[0] = UInt32(truncatingIfNeeded: seed & 0xffff_ffff)
        for j in 1..<624 {
            state[j] = 1_812_433_253 &* (state[j - 1] ^ (state[j - 1] >> 30)) &+ UInt32(j)
        }
        left = 1
        next = 0
    }

    private mutating func nextState() {
        let n = 624, m = 397
        left = n
        next = 0
        @inline(__always) func mix(_ u: UInt32, _ v: UInt32) -> UInt32 {
            let y = (u & 0x8000_0000) | (v & 0x7fff_ffff)
            return (y >> 1) ^ ((v & 1) != 0 ? 0x9908_b0df : 0)
        }
        for i in 0..<(n - m) { state[i] = state[i + m] ^ mix(state[i], state[i + 1]) }
        for i in (n - m)..<(n - 1) { state[i] = state[i + m - n] ^ mix(state[i], state[i + 1]) }
        state[n - 1] = state[m - 1] ^ mix(state[n - 1], state[0])
    }

    /// One 32-bit MT19937 output.
    public mutating func nextUInt32() -> UInt32 {
        left -= 1
        if left == 0 { nextState() }
        var y = state[next]
        next += 1
        y ^= (y >> 11)
        y ^= (y << 7) & 0x9d2c_5680
        y ^= (y << 15) & 0xefc6_0000
        y ^= (y >> 18)
        return y
    }

    /// Uniform in [0, 1) with 24 random bits (torch's float uniform).
    public mutating func uniformFloat() -> Float { Float(Double(nextUInt32() & 0xff_ffff) * (1.0 / 16_777_216.0)) }

    /// Uniform in [0, 1) with 53 random bits (torch's double uniform, from two draws).
    public mutating func uniformDouble() -> Double {
        let hi = UInt64(nextUInt32()), lo = UInt64(nextUInt32())
        let v = (hi << 32) | lo
        return Double(v & ((1 << 53) - 1)) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// One standard-normal double (torch's scalar normal_distribution<double>, with its cache).
    public mutating func normalDouble() -> Double {
        if let c = cachedNormal { cachedNormal = nil; return c }
        let u1 = uniformDouble(), u2 = uniformDouble()
        let r = (-2.0 * log1p(-u2)).squareRoot()
        let theta = 2.0 * Double.pi * u1
        cachedNormal = r * sin(theta)
        return r * cos(theta)
    }

    private static func boxMuller16(_ d: UnsafeMutablePointer<Float>) {
        let twoPi = Float(2.0 * Double.pi)
        for j in 0..<8 {
            let u1: Float = 1 - d[j]
            let u2: Float = d[j + 8]
            let radius: Float = (-2 * logf(u1)).squareRoot()
            let theta: Float = twoPi * u2
            d[j] = radius * cosf(theta)
            d[j + 8] = radius * sinf(theta)
        }
    }

    /// Fills `out` with standard-normal values exactly in torch.randn's order.
    public mutating func fillNormal(_ out: UnsafeMutableBufferPointer<Float>) {
        let n = out.count
        guard let d = out.baseAddress, n > 0 else { return }
        if n < 16 {
            for i in 0..<n { d[i] = Float(normalDouble()) }
            return
        }
        for i in 0..<n { d[i] = uniformFloat() }
        var i = 0
        while i + 16 <= n { RNG.boxMuller16(d + i); i += 16 }
        if n % 16 != 0 {
            let tail = d + (n - 16)
            for k in 0..<16 { tail[k] = uniformFloat() }
            RNG.boxMuller16(tail)
        }
    }

    /// A new tensor of standard-normal values (torch.randn(shape, generator=...)).
    public mutating func normal(_ shape: [Int]) -> Tensor {
        let t = Tensor(shape: shape, zeroed: false)
        fillNormal(t.buffer)
        return t
    }
}
