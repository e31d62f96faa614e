import FoundationEssentials
import Glibc

/// DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2, multistep second order, midpoint
/// solver type) as diffusers' DPMSolverMultistepScheduler with algorithm_type "dpmsolver++",
/// solver_order 2, lower_order_final true, final_sigmas_type from the config ("zero" by default).
/// The model output is first converted to a data prediction x0 (Eq. 5/6 of the paper):
///   epsilon: x0 = (x - sigma_t eps) / alpha_t;  v: x0 = alpha_t x - sigma_t v.
/// With lambda = log(alpha) - log(sigma) and h = lambda_t - lambda_s0:
///   first order:  x_t = (sigma_t/sigma_s0) x - alpha_t (e^{-h} - 1) D0
///   second order: D1 = (m0 - m1) / r0, r0 = h_0 / h,
///                 x_t = (sigma_t/sigma_s0) x - alpha_t (e^{-h} - 1) D0 - 0.5 alpha_t (e^{-h} - 1) D1.
/// The first step is first order, and so is the last (final sigma 0, or fewer than 15 steps); the
/// second-to-last is second order.
public final class DPMSolverMultistepScheduler: Scheduler {
    public let config: SchedulerConfig
    public let schedule: NoiseSchedule
    public let name = "dpmpp-2m"
    public let order = 1
    public let solverOrder = 2
    public let lowerOrderFinal = true
    public private(set) var timesteps: [Float] = []
    public private(set) var numInferenceSteps: Int = 0
    public let initNoiseSigma: Float = 1
    public private(set) var sigmas: [Float] = []
    public private(set) var stepIndex: Int? = nil
    public private(set) var beginIndex: Int? = nil
    let alphasCumprod: [Float]
    let trainSigmas: [Float]
    /// Last two data predictions (oldest first).
    var modelOutputs: [Tensor?] = [nil, nil]
    var lowerOrderNums = 0

    public init(config: SchedulerConfig) throws {
        try SchedulerMath.checkPredictionType(config.prediction_type)
        self.config = config
        self.schedule = try NoiseSchedule(config: config)
        var ac = schedule.alphasCumprod
        if config.rescale_betas_zero_snr { ac[ac.count - 1] = 1.0 / 16_777_216 }
        self.alphasCumprod = ac
        self.trainSigmas = ac.map { ((1 - $0) / $0).squareRoot() }
        guard ["zero", "sigma_min"].contains(config.final_sigmas_type) else {
            throw DiffEditError.unsupported("scheduler config: final_sigmas_type \"\(config.final_sigmas_type)\" (use zero or sigma_min)")
        }
    }

    public func setTimesteps(_ steps: Int) throws {
        try validateSteps(steps)
        let n = config.num_train_timesteps
        let last = n   // lambda_min_clipped = -inf: nothing clipped
        var ts: [Int]
        switch config.timestep_spacing {
        case "linspace":
            ts = Array(NumpyMath.linspace(0, Double(last - 1), steps + 1).map { Int(NumpyMath.round($0)) }.reversed().dropLast())
        case "leading":
            let ratio = last / (steps + 1)
            ts = Array((0...steps).reversed().map { $0 * ratio }.dropLast()).map { $0 + config.steps_offset }
        case "trailing":
            let ratio = Double(n) / Double(steps)
            ts = NumpyMath.arange(Double(last), 0, -ratio).map { Int(NumpyMath.round($0)) - 1 }.filter { $0 >= 0 }
        default:
            throw DiffEditError.unsupported(
                "scheduler config: timestep_spacing \"\(config.timestep_spacing)\" is not supported (use leading, trailing or linspace)")
        }
        let fp = trainSigmas.map { Double($0) }
        var sig = ts.map { Float(NumpyMath.interpOnIndexGrid(Double($0), fp)) }
        if config.use_karras_sigmas {
            // the Karras levels, and the training timesteps they sit at (rounded; not for squaredcos_cap_v2)
            let ks = KarrasSigmas.sigmas(min: Double(trainSigmas.first!), max: Double(trainSigmas.last!), steps: steps)
            let logs = trainSigmas.map { Float(log(Double($0))) }
            ts = ks.map { s -> Int in
                let t = KarrasSigmas.timestep(sigma: s, logSigmas: logs)
                return Int(config.beta_schedule == "squaredcos_cap_v2" ? t : NumpyMath.round(t))
            }
            sig = ks.map { Float($0) }
        }
        if config.final_sigmas_type == "sigma_min" {
            sig.append(((1 - alphasCumprod[0]) / alphasCumprod[0]).squareRoot())
        } else {
            sig.append(0)
        }
        timesteps = ts.map { Float($0) }
        sigmas = sig
        numInferenceSteps = ts.count
        modelOutputs = [nil, nil]
        lowerOrderNums = 0
        stepIndex = nil
        beginIndex = nil
    }

    public func setBeginIndex(_ index: Int) { beginIndex = index }

    /// diffusers' index_for_timestep: the second match when repeated; the last index when absent.
    func indexForTimestep(_ t: Float) -> Int {
        let idx = timesteps.indices.filter { timesteps[$0] == t }
        if idx.isEmpty { return timesteps.count - 1 }
        return idx.count > 1 ? idx[1] : idx[0]
    }

    /// The backend the updates run on (the engine sets the model's, so a step never leaves a resident backend).
    public var backend: Backend = .cpu

    public func scaleModelInput(_ sample: Tensor, timestep: Float) throws -> Tensor { sample }

    /// (alpha_t, sigma_t) from the sigma of the VE parameterisation: alpha = 1/sqrt(sigma^2+1).
    static func alphaSigma(_ sigma: Float) -> (Float, Float) {
        let a: Float = 1 / (sigma * sigma + 1).squareRoot()
        return (a, sigma * a)
    }

    static func lambda(_ a: Float, _ s: Float) -> Float { logf(a) - logf(s) }

    public func step(modelOutput: Tensor, timestep: Float, sample: Tensor) throws -> Tensor {
        guard numInferenceSteps > 0 else { throw DiffEditError.invalidArgument("steps: setTimesteps was not called before step") }
        try SchedulerMath.checkSameShape(modelOutput, sample, "DPM-Solver step", "model output", "sample")
        if stepIndex == nil { stepIndex = beginIndex ?? indexForTimestep(timestep) }
        let i = stepIndex!
        guard i + 1 < sigmas.count else {
            throw DiffEditError.invalidArgument("timestep: step called more times than there are timesteps (\(timesteps.count))")
        }
        let count = timesteps.count
        let lowerFinal = i == count - 1 && ((lowerOrderFinal && count < 15) || config.final_sigmas_type == "zero")
        let lowerSecond = i == count - 2 && lowerOrderFinal && count < 15

        // Data prediction x0 (convert_model_output).
        let (aS0, sS0) = Self.alphaSigma(sigmas[i])
        let x0: Tensor
        switch config.prediction_type {
        case "epsilon": x0 = try backend.lincomb([(1 / aS0, sample), (-sS0 / aS0, modelOutput)])
        case "v_prediction": x0 = try backend.lincomb([(aS0, sample), (-sS0, modelOutput)])
        default: x0 = modelOutput
        }
        modelOutputs[0] = modelOutputs[1]
        modelOutputs[1] = x0

        let (aT, sT) = Self.alphaSigma(sigmas[i + 1])
        let lambdaT = Self.lambda(aT, sT)
        let lambdaS0 = Self.lambda(aS0, sS0)
        let h: Float = lambdaT - lambdaS0
        let ratio: Float = sT / sS0
        let c0: Float = aT * (expf(-h) - 1)
        let out: Tensor
        if lowerOrderNums < 1 || lowerFinal {
            // x_t = (sigma_t/sigma_s) x - alpha_t (e^{-h} - 1) x0
            out = try backend.lincomb([(ratio, sample), (-c0, x0)])
        } else {
            _ = lowerSecond   // order 2 is the highest order here: lower_order_second changes nothing
            let (aS1, sS1) = Self.alphaSigma(sigmas[i - 1])
            let lambdaS1 = Self.lambda(aS1, sS1)
            let h0: Float = lambdaS0 - lambdaS1
            let r0: Float = h0 / h
            let invR0: Float = 1 / r0
            let c1: Float = 0.5 * c0
            let m1 = modelOutputs[0]!
            // (sigma_t/sigma_s0) x - c0 * D0 - 0.5 c0 * D1, D1 = (m0 - m1) / r0
            out = try backend.lincomb([(ratio, sample), (-c0 - c1 * invR0, x0), (c1 * invR0, m1)])
        }
        if lowerOrderNums < solverOrder { lowerOrderNums += 1 }
        stepIndex = i + 1
        return out
    }

    public func addNoise(original: Tensor, noise: Tensor, timestep: Float) throws -> Tensor {
        try SchedulerMath.checkSameShape(original, noise, "addNoise", "original", "noise")
        guard numInferenceSteps > 0 else { throw DiffEditError.invalidArgument("steps: setTimesteps was not called before addNoise") }
        let i: Int
        if let b = beginIndex { i = stepIndex ?? b } else { i = indexForTimestep(timestep) }
        let (a, s) = Self.alphaSigma(sigmas[i])
        // alpha_t x0 + sigma_t noise
        return try backend.lincomb([(a, original), (s, noise)])
    }
}
