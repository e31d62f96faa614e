/// Builds schedulers from a checkpoint's scheduler config, by name or from its `_class_name`.
///
/// Names: "ddim", "euler", "euler-a" (Euler ancestral), "dpmpp-2m" (aliases "dpm++2m", "dpmsolver++", "dpm"),
/// "dpmpp-2m-karras" (DPM++ 2M at Karras sigmas), "ddim-inverse". A config's use_karras_sigmas is honoured
/// by euler and dpmpp-2m.
/// A named scheduler is built from the checkpoint's config the way diffusers' `from_config` does
/// (same betas, spacing, steps_offset, set_alpha_to_one, prediction type).
/// `_class_name` mapping: DDIMScheduler -> ddim; PNDMScheduler -> ddim (Stable Diffusion ships PNDM
/// with skip_prk_steps, i.e. PLMS; we run DDIM on the same betas and timesteps instead, which is what
/// most SD front ends do); DDPMScheduler -> ddim; Euler*/LMS/Heun/KDPM2 -> euler; DPMSolver*/UniPC/DEIS ->
/// dpmpp-2m; anything else -> ddim.
public enum SchedulerFactory {
    public static let names = ["ddim", "euler", "euler-a", "dpmpp-2m", "dpmpp-2m-karras"]

    /// The scheduler name used for a diffusers `_class_name`.
    public static func name(forClassName cls: String) -> String {
        switch cls {
        case "DDIMScheduler", "PNDMScheduler", "DDPMScheduler", "DDIMParallelScheduler": return "ddim"
        case "EulerAncestralDiscreteScheduler": return "euler-a"
        case "EDMEulerScheduler": return "edm-euler"
        case let c where c.hasPrefix("Euler") || c.hasPrefix("LMS") || c.hasPrefix("Heun") || c.hasPrefix("KDPM2"):
            return "euler"
        case let c where c.hasPrefix("DPMSolver") || c.hasPrefix("UniPC") || c.hasPrefix("DEIS"):
            return "dpmpp-2m"
        default: return "ddim"
        }
    }

    /// Normalises a user-facing scheduler name; throws `.invalidArgument` naming "scheduler".
    public static func canonicalName(_ name: String) throws -> String {
        switch name.lowercased() {
        case "ddim": return "ddim"
        case "ddim-inverse", "ddim_inverse", "ddiminverse": return "ddim-inverse"
        case "euler", "euler-discrete", "euler_discrete": return "euler"
        case "euler-a", "euler_a", "euler-ancestral", "euler_ancestral", "eulera": return "euler-a"
        case "edm-euler", "edm_euler", "edm": return "edm-euler"
        case "dpmpp-2m-karras", "dpm++2m-karras", "dpmpp_2m_karras", "dpm++-2m-karras", "karras": return "dpmpp-2m-karras"
        case "dpmpp-2m", "dpm++2m", "dpmpp_2m", "dpm++-2m", "dpmsolver++", "dpm-solver++", "dpm": return "dpmpp-2m"
        default:
            throw DiffEditError.invalidArgument("scheduler: unknown scheduler \"\(name)\" (use ddim, euler, euler-a, dpmpp-2m or dpmpp-2m-karras)")
        }
    }

    /// Builds the scheduler `name` (nil or empty: the config's own `_class_name`) from `config`.
    public static func make(name: String?, config: SchedulerConfig) throws -> Scheduler {
        let n: String
        if let name, !name.isEmpty { n = try canonicalName(name) } else { n = self.name(forClassName: config._class_name) }
        switch n {
        case "ddim": return try DDIMScheduler(config: config)
        case "ddim-inverse": return try DDIMInverseScheduler(config: config)
        case "euler": return try EulerDiscreteScheduler(config: config)
        case "euler-a":
            let s = try EulerDiscreteScheduler(config: config)
            s.ancestral = true
            return s
        case "edm-euler": return try EDMEulerScheduler(config: config)
        case "dpmpp-2m-karras":
            var c = config
            c.use_karras_sigmas = true
            return try DPMSolverMultistepScheduler(config: c)
        default: return try DPMSolverMultistepScheduler(config: config)
        }
    }
}
