import FoundationEssentials
import Glibc

/// The training noise schedule shared by every scheduler: betas, alphas and their cumulative product,
/// computed exactly the way diffusers 0.42 computes them (torch float32 tensors), so that timesteps and
/// coefficients agree bit for bit on the same inputs:
/// - `linear` / `scaled_linear`: `torch.linspace(..., dtype=float32)`, whose CPU kernel evaluates
///   `fma(step, i, start)` for the first half and `fma(-step, n-1-i, end)` for the second;
///   `scaled_linear` squares the float32 values.
/// - `squaredcos_cap_v2`: the GLIDE cosine `alpha_bar` in float64, betas clipped at 0.999, then float32.
/// - `torch.cumprod` of float32 accumulates in float64 and rounds each output to float32.
/// - `rescale_betas_zero_snr` (Lin et al. 2024, Algorithm 1) in float32.
public struct NoiseSchedule: Sendable {
    public let numTrainTimesteps: Int
    public let betas: [Float]
    public let alphas: [Float]
    public let alphasCumprod: [Float]

    public init(config: SchedulerConfig) throws {
        let n = config.num_train_timesteps
        guard n >= 2 && n <= 100_000 else {
            throw DiffEditError.invalidArgument("scheduler config: num_train_timesteps \(n) must be in 2...100000")
        }
        var betas: [Float]
        switch config.beta_schedule {
        case "linear":
            betas = NoiseSchedule.torchLinspace(NoiseSchedule.pythonDouble(config.beta_start),
                                                NoiseSchedule.pythonDouble(config.beta_end), n)
        case "scaled_linear":
            let lin = NoiseSchedule.torchLinspace(NoiseSchedule.pythonDouble(config.beta_start).squareRoot(),
                                                  NoiseSchedule.pythonDouble(config.beta_end).squareRoot(), n)
            betas = lin.map { $0 * $0 }
        case "squaredcos_cap_v2":
            betas = NoiseSchedule.cosineBetas(n)
        default:
            throw DiffEditError.unsupported(
                "scheduler config: beta_schedule \"\(config.beta_schedule)\" is not supported (use linear, scaled_linear or squaredcos_cap_v2)")
        }
        guard betas.allSatisfy({ $0.isFinite && $0 >= 0 && $0 < 1 }) else {
            throw DiffEditError.invalidArgument("scheduler config: beta_start/beta_end give betas outside [0, 1)")
        }
        if config.rescale_betas_zero_snr { betas = NoiseSchedule.rescaleZeroTerminalSNR(betas) }
        let alphas = betas.map { 1 - $0 }
        self.numTrainTimesteps = n
        self.betas = betas
        self.alphas = alphas
        self.alphasCumprod = NoiseSchedule.cumprod(alphas)
    }

    /// The float64 value Python had for a config number that our config stores as Float: the shortest
    /// decimal that round-trips the Float (what the JSON said, e.g. "0.00085") read as a Double.
    /// abar at an integral training timestep, clamped into the table.
    public func alphaProd(_ t: Int) -> Float {
        alphasCumprod[min(max(t, 0), numTrainTimesteps - 1)]
    }

    public static func pythonDouble(_ x: Float) -> Double { Double("\(x)") ?? Double(x) }

    /// torch.linspace(start, end, n, dtype=float32) on the CPU (scalar kernel with contracted fma).
    public static func torchLinspace(_ start: Double, _ end: Double, _ n: Int) -> [Float] {
        let s = Float(start), e = Float(end)
        if n == 1 { return [s] }
        let step = (e - s) / Float(n - 1)
        let half = n / 2
        return (0..<n).map { i in
            i < half ? s.addingProduct(step, Float(i)) : e.addingProduct(-step, Float(n - 1 - i))
        }
    }

    /// diffusers' betas_for_alpha_bar with the cosine transform (float64, then float32).
    public static func cosineBetas(_ n: Int, maxBeta: Double = 0.999) -> [Float] {
        func alphaBar(_ t: Double) -> Double { let c = cos((t + 0.008) / 1.008 * Double.pi / 2); return c * c }
        return (0..<n).map { i in
            let t1 = Double(i) / Double(n), t2 = Double(i + 1) / Double(n)
            return Float(min(1 - alphaBar(t2) / alphaBar(t1), maxBeta))
        }
    }

    /// torch.cumprod over float32 (float64 accumulator, float32 outputs).
    public static func cumprod(_ x: [Float]) -> [Float] {
        var acc = 1.0
        return x.map { acc *= Double($0); return Float(acc) }
    }

    /// Rescales betas to zero terminal SNR (float32, as diffusers).
    public static func rescaleZeroTerminalSNR(_ betas: [Float]) -> [Float] {
        let alphas = betas.map { 1 - $0 }
        var sqrtBar = cumprod(alphas).map { $0.squareRoot() }
        let s0 = sqrtBar[0], sT = sqrtBar[sqrtBar.count - 1]
        let k = s0 / (s0 - sT)
        for i in sqrtBar.indices { sqrtBar[i] = (sqrtBar[i] - sT) * k }
        let bar = sqrtBar.map { $0 * $0 }
        var out = [Float](repeating: 0, count: bar.count)
        out[0] = 1 - bar[0]
        for i in 1..<bar.count { out[i] = 1 - bar[i] / bar[i - 1] }
        return out
    }

    /// sigma_t = sqrt((1 - alphabar) / alphabar) in float32 (Euler, DPM-Solver), index = training timestep.
    public var sigmas: [Float] { alphasCumprod.map { ((1 - $0) / $0).squareRoot() } }
}
