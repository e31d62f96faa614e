/// A diffusion sampler, numerically as the diffusers 0.42 scheduler of the same name.
///
/// Use: `setTimesteps(steps)`, then for each `t` in `timesteps`: feed `scaleModelInput(x, t)` to the
/// UNet and set `x = step(modelOutput:timestep:sample:)`. Schedulers are stateful (the multistep
/// solver keeps past model outputs, Euler and DPM-Solver track the step index like diffusers); call
/// `setTimesteps` again to restart. Timesteps are training-timestep values, integral for all
/// schedulers except Euler with "linspace" spacing (fractional, passed to the UNet as they are).
public protocol Scheduler: AnyObject {
    /// The scheduler configuration it was built from (betas, spacing, prediction type).
    var config: SchedulerConfig { get }
    /// "ddim", "ddim-inverse", "euler" or "dpmpp-2m".
    var name: String { get }
    /// The training noise schedule.
    var schedule: NoiseSchedule { get }
    /// Model evaluations per entry of `timesteps` (diffusers' `order`): 1 for all schedulers here.
    var order: Int { get }
    /// The inference timesteps, first to last, after `setTimesteps`.
    var timesteps: [Float] { get }
    /// Number of inference steps from the last `setTimesteps`.
    var numInferenceSteps: Int { get }
    /// Standard deviation of the initial noise: x_T = noise * initNoiseSigma.
    var initNoiseSigma: Float { get }
    /// The backend the updates run on (default the CPU; the editing engine sets the model's).
    var backend: Backend { get set }

    /// Places `steps` inference timesteps; throws `.invalidArgument` naming "steps" unless
    /// 1 <= steps <= num_train_timesteps.
    func setTimesteps(_ steps: Int) throws
    /// Starts the step index at `index` (diffusers' set_begin_index, used by img2img / SDEdit).
    func setBeginIndex(_ index: Int)
    /// The UNet input for `sample` at timestep `timestep` (Euler divides by sqrt(sigma^2 + 1)).
    func scaleModelInput(_ sample: Tensor, timestep: Float) throws -> Tensor
    /// One denoising step: x_t -> x_{t-1} (or x_{t+1} for the inverse scheduler).
    func step(modelOutput: Tensor, timestep: Float, sample: Tensor) throws -> Tensor
    /// Forward diffusion: the noisy sample at `timestep` (SDEdit's starting point).
    func addNoise(original: Tensor, noise: Tensor, timestep: Float) throws -> Tensor
}

extension Scheduler {
    /// diffusers' StableDiffusionImg2ImgPipeline.get_timesteps: the timesteps that remain when only
    /// the last `strength` fraction of `numInferenceSteps` is run; also sets the begin index.
    /// Call after `setTimesteps`. strength must be in (0, 1].
    @discardableResult
    public func img2imgTimesteps(strength: Float) throws -> (timesteps: [Float], startIndex: Int) {
        guard strength.isFinite, strength > 0, strength <= 1 else {
            throw DiffEditError.invalidArgument("strength: \(strength) must be in (0, 1]")
        }
        let n = numInferenceSteps
        guard n > 0 else { throw DiffEditError.invalidArgument("steps: setTimesteps must be called before img2imgTimesteps") }
        // int(num_inference_steps * strength) with strength as the Python float the user typed.
        let initTimestep = min(Int(Double(n) * NoiseSchedule.pythonDouble(strength)), n)
        let tStart = max(n - initTimestep, 0)
        let ts = Array(timesteps.dropFirst(tStart * order))
        setBeginIndex(tStart * order)
        return (ts, tStart * order)
    }

    /// Validates `steps` against the schedule (shared by all setTimesteps implementations).
    func validateSteps(_ steps: Int) throws {
        let n = config.num_train_timesteps
        guard steps >= 1 && steps <= n else {
            throw DiffEditError.invalidArgument("steps: \(steps) must be between 1 and \(n) (num_train_timesteps of the scheduler)")
        }
    }
}
