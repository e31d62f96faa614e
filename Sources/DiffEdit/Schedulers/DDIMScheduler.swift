/// DDIM (Song et al., ICLR 2021) with eta = 0: the deterministic update of Eq. (12),
///   x_{t-1} = sqrt(abar_{t-1}) * x0_pred + sqrt(1 - abar_{t-1}) * eps_pred,
/// as diffusers' DDIMScheduler.step. The previous timestep is t - num_train_timesteps / steps (integer
/// division, whatever the spacing, as diffusers does); before t = 0 it uses `final_alpha_cumprod`
/// (1 with set_alpha_to_one, else abar_0). clip_sample clamps x0_pred to +-clip_sample_range.
/// Also stands in for PNDM (same betas and spacing; see SchedulerFactory).
public final class DDIMScheduler: Scheduler {
    public let config: SchedulerConfig
    public let schedule: NoiseSchedule
    public let name = "ddim"
    public let order = 1
    public private(set) var timesteps: [Float] = []
    public private(set) var numInferenceSteps: Int = 0
    public let initNoiseSigma: Float = 1
    let finalAlphaCumprod: Float
    /// The backend the updates run on (the engine sets the model's, so a step never leaves a resident backend).
    public var backend: Backend = .cpu

    public init(config: SchedulerConfig) throws {
        try SchedulerMath.checkPredictionType(config.prediction_type)
        self.config = config
        self.schedule = try NoiseSchedule(config: config)
        self.finalAlphaCumprod = config.set_alpha_to_one ? 1 : schedule.alphasCumprod[0]
    }

    public func setTimesteps(_ steps: Int) throws {
        try validateSteps(steps)
        let ts = try SchedulerMath.ddimTimesteps(config: config, steps: steps)
        numInferenceSteps = steps
        timesteps = ts.map { Float($0) }
    }

    public func setBeginIndex(_ index: Int) {}   // DDIM is stateless

    public func scaleModelInput(_ sample: Tensor, timestep: Float) throws -> Tensor { sample }

    public func step(modelOutput: Tensor, timestep: Float, sample: Tensor) throws -> Tensor {
        guard numInferenceSteps > 0 else { throw DiffEditError.invalidArgument("steps: setTimesteps was not called before step") }
        try SchedulerMath.checkSameShape(modelOutput, sample, "DDIM step", "model output", "sample")
        let t = Int(timestep)
        let prevT = t - config.num_train_timesteps / numInferenceSteps
        let aT = schedule.alphaProd(t)
        let aPrev = prevT >= 0 ? schedule.alphaProd(prevT) : finalAlphaCumprod
        var (x0, eps) = try SchedulerMath.predictions(backend, modelOutput: modelOutput, sample: sample, alphaProd: aT,
                                                      predictionType: config.prediction_type)
        if config.clip_sample {
            let r = config.clip_sample_range
            x0 = SchedulerMath.map1(x0) { min(max($0, -r), r) }
        }
        let dirCoef: Float = (1 - aPrev).squareRoot()   // (1 - abar_prev - sigma^2)^0.5 with eta = 0
        let x0Coef: Float = aPrev.squareRoot()
        // prev = abar_prev^0.5 * x0 + (1 - abar_prev)^0.5 * eps      (Eq. 12, sigma_t = 0)
        return try backend.lincomb([(x0Coef, x0), (dirCoef, eps)])
    }

    public func addNoise(original: Tensor, noise: Tensor, timestep: Float) throws -> Tensor {
        try SchedulerMath.checkSameShape(original, noise, "addNoise", "original", "noise")
        let a = schedule.alphaProd(Int(timestep))
        let sa = a.squareRoot(), sb = (1 - a).squareRoot()
        // sqrt(abar) * x0 + sqrt(1 - abar) * noise
        return try backend.lincomb([(sa, original), (sb, noise)])
    }
}
