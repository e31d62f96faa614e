/// Scheduler helpers. The updates themselves are linear combinations of tensors and run as the backend's
/// lincomb op (so a denoising step never leaves a resident backend); `map1`/`map2` are host loops for the
/// rare non-linear cases (clip_sample) and for small host-side tensors.
enum SchedulerMath {
    static func checkSameShape(_ a: Tensor, _ b: Tensor, _ what: String, _ aName: String, _ bName: String) throws {
        guard a.shape == b.shape else {
            throw DiffEditError.invalidArgument("\(what): \(aName) has shape \(a.shape) but \(bName) has shape \(b.shape)")
        }
    }

    /// out[i] = f(a[i], b[i])
    static func map2(_ a: Tensor, _ b: Tensor, _ f: (Float, Float) -> Float) -> Tensor {
        let out = Tensor(shape: a.shape, zeroed: false)
        let pa = a.data, pb = b.data, po = out.data
        for i in 0..<a.count { po[i] = f(pa[i], pb[i]) }
        return out
    }

    /// out[i] = f(a[i])
    static func map1(_ a: Tensor, _ f: (Float) -> Float) -> Tensor {
        let out = Tensor(shape: a.shape, zeroed: false)
        let pa = a.data, po = out.data
        for i in 0..<a.count { po[i] = f(pa[i]) }
        return out
    }

    /// Converts a model output to (x0, epsilon) for DDIM-type updates (diffusers' prediction types), as
    /// backend ops (a resident backend keeps them in its memory). alphaProd = alphabar_t; coefficients
    /// float32 as in torch.
    static func predictions(_ be: Backend, modelOutput m: Tensor, sample x: Tensor, alphaProd: Float, predictionType: String)
        throws -> (x0: Tensor, eps: Tensor)
    {
        let betaProd: Float = 1 - alphaProd
        let sa = alphaProd.squareRoot(), sb = betaProd.squareRoot()
        switch predictionType {
        case "epsilon":
            // (sample - beta^0.5 * eps) / alpha^0.5
            return (try be.lincomb([(1 / sa, x), (-sb / sa, m)]), m)
        case "sample":
            return (m, try be.lincomb([(1 / sb, x), (-sa / sb, m)]))
        case "v_prediction":
            // x0 = alpha^0.5 x - beta^0.5 v ; eps = alpha^0.5 v + beta^0.5 x
            return (try be.lincomb([(sa, x), (-sb, m)]), try be.lincomb([(sb, x), (sa, m)]))
        default:
            throw DiffEditError.unsupported(
                "scheduler config: prediction_type \"\(predictionType)\" is not supported (use epsilon, v_prediction or sample)")
        }
    }

    /// diffusers' index_for_timestep of the sigma schedulers (Euler, EDM Euler): the position of `t` in
    /// `timesteps`, the second one when the value repeats; a timestep not in the schedule is an error.
    static func indexForTimestep(_ t: Float, in timesteps: [Float]) throws -> Int {
        let idx = timesteps.indices.filter { timesteps[$0] == t }
        guard !idx.isEmpty else {
            throw DiffEditError.invalidArgument("timestep: \(t) is not one of the scheduler's timesteps")
        }
        return idx.count > 1 ? idx[1] : idx[0]
    }

    static func checkPredictionType(_ p: String) throws {
        guard ["epsilon", "v_prediction", "sample"].contains(p) else {
            throw DiffEditError.unsupported(
                "scheduler config: prediction_type \"\(p)\" is not supported (use epsilon, v_prediction or sample)")
        }
    }

    /// diffusers' DDIM/DDIM-inverse "leading"/"trailing"/"linspace" timesteps (descending) as Ints.
    static func ddimTimesteps(config: SchedulerConfig, steps: Int) throws -> [Int] {
        let n = config.num_train_timesteps
        switch config.timestep_spacing {
        case "linspace":
            return NumpyMath.linspace(0, Double(n - 1), steps).map { Int(NumpyMath.round($0)) }.reversed()
        case "leading":
            let ratio = n / steps
            return (0..<steps).reversed().map { $0 * ratio + config.steps_offset }
        case "trailing":
            let ratio = Double(n) / Double(steps)
            return NumpyMath.arange(Double(n), 0, -ratio).map { Int(NumpyMath.round($0)) - 1 }.filter { $0 >= 0 }
        default:
            throw DiffEditError.unsupported(
                "scheduler config: timestep_spacing \"\(config.timestep_spacing)\" is not supported (use leading, trailing or linspace)")
        }
    }
}
