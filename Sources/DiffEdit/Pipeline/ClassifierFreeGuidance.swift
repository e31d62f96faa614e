/// Classifier-free guidance (Ho & Salimans 2022) as diffusers' StableDiffusionPipeline applies it:
/// the UNet runs on the batch [uncond; cond] and eps = eps_u + g (eps_c - eps_u). With g <= 1 diffusers
/// skips the unconditional branch altogether (do_classifier_free_guidance = guidance_scale > 1).
public enum ClassifierFreeGuidance {
    /// Whether guidance `g` needs the unconditional branch.
    public static func isEnabled(_ g: Float) -> Bool { g > 1 }

    /// Throws `.invalidArgument` naming "guidance" when `g` is NaN or infinite.
    public static func validate(_ g: Float, name: String = "guidance") throws {
        guard g.isFinite else { throw DiffEditError.invalidArgument("\(name): \(g) is not a finite number") }
    }

    /// eps [2B, ...] = [uncond; cond] -> [B, ...]: u + g (c - u), in diffusers' float32 order.
    public static func combine(_ eps: Tensor, guidance g: Float) throws -> Tensor {
        guard eps.rank >= 1, eps.shape[0] % 2 == 0, eps.shape[0] > 0 else {
            throw DiffEditError.invalidArgument("guidance: model output batch \(eps.shape) is not [uncond; cond]")
        }
        let half = eps.shape[0] / 2
        let u = eps.slice0(0, half), c = eps.slice0(half, half)
        let y = Tensor(shape: u.shape, zeroed: false)
        let pu = u.data, pc = c.data, py = y.data
        for i in 0..<y.count {
            let d: Float = pc[i] - pu[i]
            py[i] = pu[i] + g * d
        }
        return y
    }
}
