import Glibc

/// diffusers' EDMEulerScheduler (Karras et al. 2022, the EDM preconditioning; CosXL / CosXL-Edit checkpoints):
///   sigmas: Karras (rho) or exponential between sigma_min and sigma_max over a linspace(0, 1, n) ramp (float64,
///   then float32), plus a final 0 (or sigma_min); timesteps = c_noise = 0.25 ln(sigma), what the UNet sees;
///   UNet input x * c_in, c_in = 1 / sqrt(sigma^2 + sigma_data^2);
///   denoised = c_skip x + c_out model_output, c_skip = sigma_data^2 / (sigma^2 + sigma_data^2),
///   c_out = +-sigma sigma_data / sqrt(sigma^2 + sigma_data^2) (epsilon / v_prediction);
///   x_next = x + (x - denoised) / sigma (sigma_next - sigma)   (s_churn = 0).
/// init_noise_sigma = sqrt(sigma_max^2 + 1); add_noise = x0 + noise sigma.
public final class EDMEulerScheduler: Scheduler {
    public let config: SchedulerConfig
    public let schedule: NoiseSchedule
    public let name = "edm-euler"
    public let order = 1
    public private(set) var timesteps: [Float] = []
    public private(set) var numInferenceSteps: Int = 0
    public private(set) var sigmas: [Float] = []
    public private(set) var stepIndex: Int? = nil
    public private(set) var beginIndex: Int? = nil
    public var backend: Backend = .cpu

    public init(config: SchedulerConfig) throws {
        guard ["epsilon", "v_prediction"].contains(config.prediction_type) else {
            throw DiffEditError.unsupported("scheduler config: prediction_type \"\(config.prediction_type)\" is not supported by EDMEulerScheduler (epsilon or v_prediction)")
        }
        guard ["karras", "exponential"].contains(config.sigma_schedule) else {
            throw DiffEditError.model("scheduler config: field sigma_schedule: \"\(config.sigma_schedule)\" (karras or exponential)")
        }
        guard config.sigma_min.isFinite, config.sigma_max.isFinite, config.sigma_data.isFinite, config.rho.isFinite,
              config.sigma_min > 0, config.sigma_max > config.sigma_min, config.sigma_data > 0, config.rho > 0 else {
            throw DiffEditError.model("scheduler config: sigma_min \(config.sigma_min), sigma_max \(config.sigma_max), sigma_data \(config.sigma_data), rho \(config.rho): need 0 < sigma_min < sigma_max and positive sigma_data, rho")
        }
        guard ["zero", "sigma_min"].contains(config.final_sigmas_type) else {
            throw DiffEditError.unsupported("scheduler config: final_sigmas_type \"\(config.final_sigmas_type)\" (use zero or sigma_min)")
        }
        self.config = config
        self.schedule = try NoiseSchedule(config: config)
    }

    public var initNoiseSigma: Float { Float((Double(config.sigma_max) * Double(config.sigma_max) + 1).squareRoot()) }

    /// sigmas for a [0, 1] ramp (float64, as diffusers).
    func sigmas(ramp: [Double]) -> [Double] {
        let lo = Double(config.sigma_min), hi = Double(config.sigma_max)
        if config.sigma_schedule == "karras" {
            let rho = Double(config.rho)
            let a = pow(lo, 1 / rho), b = pow(hi, 1 / rho)
            return ramp.map { pow(b + $0 * (a - b), rho) }
        }
        // exponential: linspace(log min, log max, n).exp().flip(0) (torch.linspace in float32)
        let n = ramp.count
        let l0 = Float(log(lo)), l1 = Float(log(hi))
        let ls: [Float] = (0..<n).map { i in n == 1 ? l0 : l0 + Float(i) * ((l1 - l0) / Float(n - 1)) }
        return ls.map { Double(Glibc.expf($0)) }.reversed()
    }

    public func setTimesteps(_ steps: Int) throws {
        try validateSteps(steps)
        let ramp = NumpyMath.linspace(0, 1, steps)
        var sig = sigmas(ramp: ramp).map { Float($0) }
        timesteps = sig.map { 0.25 * Glibc.logf($0) }
        sig.append(config.final_sigmas_type == "sigma_min" ? sig.last! : 0)
        sigmas = sig
        numInferenceSteps = steps
        stepIndex = nil
        beginIndex = nil
    }

    public func setBeginIndex(_ index: Int) { beginIndex = index }

    func indexForTimestep(_ t: Float) throws -> Int { try SchedulerMath.indexForTimestep(t, in: timesteps) }

    func initStepIndex(_ t: Float) throws { if stepIndex == nil { stepIndex = try beginIndex ?? indexForTimestep(t) } }

    public func scaleModelInput(_ sample: Tensor, timestep: Float) throws -> Tensor {
        guard numInferenceSteps > 0 else { throw DiffEditError.invalidArgument("steps: setTimesteps was not called before scaleModelInput") }
        try initStepIndex(timestep)
        let s = sigmas[stepIndex!], sd = config.sigma_data
        return try backend.lincomb([(1 / (s * s + sd * sd).squareRoot(), sample)])
    }

    public func step(modelOutput: Tensor, timestep: Float, sample: Tensor) throws -> Tensor {
        guard numInferenceSteps > 0 else { throw DiffEditError.invalidArgument("steps: setTimesteps was not called before step") }
        try SchedulerMath.checkSameShape(modelOutput, sample, "EDM Euler step", "model output", "sample")
        try initStepIndex(timestep)
        let i = stepIndex!
        guard i + 1 < sigmas.count else {
            throw DiffEditError.invalidArgument("timestep: step called more times than there are timesteps (\(timesteps.count))")
        }
        let s = sigmas[i], sd = config.sigma_data
        let cSkip: Float = sd * sd / (s * s + sd * sd)
        var cOut: Float = s * sd / (s * s + sd * sd).squareRoot()
        if config.prediction_type == "v_prediction" { cOut = -cOut }
        // denoised = c_skip x + c_out m; x_next = x + (x - denoised) / s * dt = (1 + k) x - k denoised, k = dt / s
        let k: Float = (sigmas[i + 1] - s) / s
        let out = try backend.lincomb([(1 + k - k * cSkip, sample), (-k * cOut, modelOutput)])
        stepIndex = i + 1
        return out
    }

    public func addNoise(original: Tensor, noise: Tensor, timestep: Float) throws -> Tensor {
        try SchedulerMath.checkSameShape(original, noise, "addNoise", "original", "noise")
        guard numInferenceSteps > 0 else { throw DiffEditError.invalidArgument("steps: setTimesteps was not called before addNoise") }
        let i: Int
        if let b = beginIndex { i = stepIndex ?? b } else { i = try indexForTimestep(timestep) }
        return try backend.lincomb([(1, original), (sigmas[i], noise)])
    }
}
