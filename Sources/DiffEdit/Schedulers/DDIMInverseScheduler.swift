/// DDIM inversion: the DDIM update run backwards (x_t -> x_{t+1}) as diffusers' DDIMInverseScheduler:
/// at timestep t (ascending) it uses abar at t - num_train_timesteps / steps (or `initial_alpha_cumprod`
/// below 0: 1 with set_alpha_to_one, else abar_0) as the "current" level and abar_t as the next,
///   x_next = sqrt(abar_t) * x0_pred + sqrt(1 - abar_t) * eps_pred.
/// Timesteps are the forward DDIM timesteps of the same config in ascending order ("leading" with
/// steps_offset, "trailing"; for "linspace", which diffusers' inverse scheduler rejects, the reversed
/// DDIM linspace timesteps).
public final class DDIMInverseScheduler: Scheduler {
    public let config: SchedulerConfig
    public let schedule: NoiseSchedule
    public let name = "ddim-inverse"
    public let order = 1
    public private(set) var timesteps: [Float] = []
    public private(set) var numInferenceSteps: Int = 0
    public let initNoiseSigma: Float = 1
    let initialAlphaCumprod: Float
    /// The backend the updates run on (the engine sets the model's, so a step never leaves a resident backend).
    public var backend: Backend = .cpu

    public init(config: SchedulerConfig) throws {
        try SchedulerMath.checkPredictionType(config.prediction_type)
        self.config = config
        self.schedule = try NoiseSchedule(config: config)
        self.initialAlphaCumprod = config.set_alpha_to_one ? 1 : schedule.alphasCumprod[0]
    }

    public func setTimesteps(_ steps: Int) throws {
        try validateSteps(steps)
        let ts = try SchedulerMath.ddimTimesteps(config: config, steps: steps)
        numInferenceSteps = steps
        timesteps = ts.reversed().map { Float($0) }
    }

    public func setBeginIndex(_ index: Int) {}

    public func scaleModelInput(_ sample: Tensor, timestep: Float) throws -> Tensor { sample }

    public func step(modelOutput: Tensor, timestep: Float, sample: Tensor) throws -> Tensor {
        guard numInferenceSteps > 0 else { throw DiffEditError.invalidArgument("steps: setTimesteps was not called before step") }
        try SchedulerMath.checkSameShape(modelOutput, sample, "DDIM inverse step", "model output", "sample")
        let nextT = Int(timestep)
        let curT = min(nextT - config.num_train_timesteps / numInferenceSteps, config.num_train_timesteps - 1)
        let aT = curT >= 0 ? schedule.alphaProd(curT) : initialAlphaCumprod
        let aNext = schedule.alphaProd(nextT)
        var (x0, eps) = try SchedulerMath.predictions(backend, modelOutput: modelOutput, sample: sample, alphaProd: aT,
                                                      predictionType: config.prediction_type)
        if config.clip_sample {
            let r = config.clip_sample_range
            x0 = SchedulerMath.map1(x0) { min(max($0, -r), r) }
        }
        let dirCoef: Float = (1 - aNext).squareRoot()
        let x0Coef: Float = aNext.squareRoot()
        return try backend.lincomb([(x0Coef, x0), (dirCoef, eps)])
    }

    public func addNoise(original: Tensor, noise: Tensor, timestep: Float) throws -> Tensor {
        try SchedulerMath.checkSameShape(original, noise, "addNoise", "original", "noise")
        let a = schedule.alphaProd(Int(timestep))
        let sa = a.squareRoot(), sb = (1 - a).squareRoot()
        return try backend.lincomb([(sa, original), (sb, noise)])
    }
}
