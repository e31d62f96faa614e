import Glibc

/// Euler discrete sampler (Karras et al. 2022, Algorithm 2 with s_churn = 0) as diffusers'
/// EulerDiscreteScheduler with interpolation_type "linear": sigma_t = sqrt((1 - abar_t) / abar_t),
/// interpolated linearly at the (possibly fractional) inference timesteps, plus a final sigma of 0
/// (final_sigmas_type "zero") or sigma_min. The UNet sees x / sqrt(sigma^2 + 1); the update is
///   d = (x - x0_pred) / sigma,  x_next = x + d * (sigma_next - sigma).
/// init_noise_sigma is max sigma for "linspace"/"trailing", sqrt(max sigma^2 + 1) for "leading".
public final class EulerDiscreteScheduler: Scheduler {
    public let config: SchedulerConfig
    public let schedule: NoiseSchedule
    public var name: String { ancestral ? "euler-a" : "euler" }
    /// Euler ancestral (diffusers' EulerAncestralDiscreteScheduler): each step goes down to sigma_down and adds
    /// fresh noise of sigma_up, drawn from `rng` (the pipeline's generator, continuing after the initial noise).
    public var ancestral = false
    public var rng = RNG(seed: 0)
    public let order = 1
    public private(set) var timesteps: [Float] = []
    public private(set) var numInferenceSteps: Int = 0
    /// sigmas at the inference timesteps, plus the final sigma (count = timesteps.count + 1).
    public private(set) var sigmas: [Float] = []
    public private(set) var stepIndex: Int? = nil
    public private(set) var beginIndex: Int? = nil
    /// abar with diffusers' zero-SNR patch (last entry 2^-24 when rescale_betas_zero_snr).
    let alphasCumprod: [Float]
    let trainSigmas: [Float]

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
        // Before setTimesteps: the full training schedule (diffusers' constructor state).
        self.sigmas = trainSigmas.reversed() + [0]
    }

    public var initNoiseSigma: Float {
        let maxSigma = sigmas.max() ?? 1
        if config.timestep_spacing == "linspace" || config.timestep_spacing == "trailing" { return maxSigma }
        return (maxSigma * maxSigma + 1).squareRoot()
    }

    public func setTimesteps(_ steps: Int) throws {
        try validateSteps(steps)
        let n = config.num_train_timesteps
        var ts: [Float]
        switch config.timestep_spacing {
        case "linspace":
            ts = NumpyMath.linspace(0, Double(n - 1), steps).reversed().map { Float($0) }
        case "leading":
            let ratio = n / steps
            ts = (0..<steps).reversed().map { Float($0 * ratio) + Float(config.steps_offset) }
        case "trailing":
            let ratio = Double(n) / Double(steps)
            ts = NumpyMath.arange(Double(n), 0, -ratio).map { Float(NumpyMath.round($0)) - 1 }.filter { $0 >= 0 }
        default:
            throw DiffEditError.unsupported(
                "scheduler config: timestep_spacing \"\(config.timestep_spacing)\" is not supported (use leading, trailing or linspace)")
        }
        let fp = trainSigmas.map { Double($0) }
        var sig = ts.map { Float(NumpyMath.interpOnIndexGrid(Double($0), fp)) }
        if config.use_karras_sigmas {
            // the Karras levels at their (fractional) training timesteps
            let spaced = ts.map { NumpyMath.interpOnIndexGrid(Double($0), fp) }          // float64, as np.interp
            let ks = KarrasSigmas.sigmas(min: spaced.last!, max: spaced.first!, steps: steps)
            let logs = trainSigmas.map { Float(Glibc.log(Double($0))) }
            ts = ks.map { Float(KarrasSigmas.timestep(sigma: $0, logSigmas: logs)) }
            sig = ks.map { Float($0) }
        }
        if config.final_sigmas_type == "sigma_min" {
            sig.append(((1 - alphasCumprod[0]) / alphasCumprod[0]).squareRoot())
        } else {
            sig.append(0)
        }
        timesteps = ts
        sigmas = sig
        numInferenceSteps = steps
        stepIndex = nil
        beginIndex = nil
    }

    /// The backend the updates run on (the engine sets the model's, so a step never leaves a resident backend).
    public var backend: Backend = .cpu

    public func setBeginIndex(_ index: Int) { beginIndex = index }

    /// diffusers' index_for_timestep: the matching position (the second one when a value repeats).
    func indexForTimestep(_ t: Float) throws -> Int { try SchedulerMath.indexForTimestep(t, in: timesteps) }

    func initStepIndex(_ t: Float) throws {
        if stepIndex == nil { stepIndex = try beginIndex ?? indexForTimestep(t) }
    }

    public func scaleModelInput(_ sample: Tensor, timestep: Float) throws -> Tensor {
        guard numInferenceSteps > 0 else { throw DiffEditError.invalidArgument("steps: setTimesteps was not called before scaleModelInput") }
        try initStepIndex(timestep)
        let sigma = sigmas[stepIndex!]
        let d: Float = (sigma * sigma + 1).squareRoot()
        return try backend.lincomb([(1 / d, sample)])
    }

    public func step(modelOutput: Tensor, timestep: Float, sample: Tensor) throws -> Tensor {
        guard numInferenceSteps > 0 else { throw DiffEditError.invalidArgument("steps: setTimesteps was not called before step") }
        try SchedulerMath.checkSameShape(modelOutput, sample, "Euler step", "model output", "sample")
        try initStepIndex(timestep)
        let i = stepIndex!
        guard i + 1 < sigmas.count else {
            throw DiffEditError.invalidArgument("timestep: step called more times than there are timesteps (\(timesteps.count))")
        }
        let sigma = sigmas[i]
        let sigmaHat = sigma   // gamma = 0 (s_churn = 0)
        let x0: Tensor
        switch config.prediction_type {
        case "epsilon":
            x0 = try backend.lincomb([(1, sample), (-sigmaHat, modelOutput)])
        case "v_prediction":
            // v * (-sigma / (sigma^2 + 1)^0.5) + x / (sigma^2 + 1)
            let s2p1: Float = sigma * sigma + 1
            let c: Float = -sigma / s2p1.squareRoot()
            x0 = try backend.lincomb([(1 / s2p1, sample), (c, modelOutput)])
        default:
            x0 = modelOutput
        }
        if ancestral {
            // sigma_up = (to^2 (from^2 - to^2) / from^2)^0.5, sigma_down = (to^2 - up^2)^0.5;
            // prev = x + (x - x0) / sigma (sigma_down - sigma) + noise sigma_up
            let to = sigmas[i + 1]
            let up: Float = (to * to * (sigma * sigma - to * to) / (sigma * sigma)).squareRoot()
            let down: Float = (to * to - up * up).squareRoot()
            let k: Float = (down - sigma) / sigma
            let noise = try backend.onDevice(rng.normal(sample.shape))
            let out = try backend.lincomb([(1 + k, sample), (-k, x0), (up, noise)])
            stepIndex = i + 1
            return out
        }
        let dt: Float = sigmas[i + 1] - sigmaHat
        // derivative = (x - x0) / sigma_hat ; prev = x + derivative * dt = (1 + dt/sigma_hat) x - (dt/sigma_hat) x0
        let k: Float = dt / sigmaHat
        let out = try backend.lincomb([(1 + k, sample), (-k, x0)])
        stepIndex = i + 1
        return out
    }

    public func addNoise(original: Tensor, noise: Tensor, timestep: Float) throws -> Tensor {
        try SchedulerMath.checkSameShape(original, noise, "addNoise", "original", "noise")
        guard numInferenceSteps > 0 else { throw DiffEditError.invalidArgument("steps: setTimesteps was not called before addNoise") }
        let i: Int
        if let b = beginIndex { i = stepIndex ?? b } else { i = try indexForTimestep(timestep) }
        let sigma = sigmas[i]
        // x0 + noise * sigma
        return try backend.lincomb([(1, original), (sigma, noise)])
    }
}
