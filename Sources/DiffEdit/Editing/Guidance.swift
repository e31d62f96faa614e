/// Every guidance formula of the editing engine, in one place: how a slot's UNet batch is laid out (which
/// latent branch and which prompt embedding each item takes) and how the items' outputs combine into each
/// branch's model output. The combination is one linear combination per branch, run as a backend op.
///
/// - classifier-free guidance (Ho & Salimans 2022), diffusers' StableDiffusionPipeline: items
///   [uncond, cond], eps = u + g (c - u) = (1 - g) u + g c; with g <= 1 diffusers runs the cond item only.
/// - InstructPix2Pix (Brooks et al. 2023, Eq. 3): items [text, image-only, uncond] (image latents
///   [z, z, 0]), eps = u + g (t - i) + g_img (i - u) = g t + (g_img - g) i + (1 - g_img) u; one item when
///   g <= 1 or g_img < 1 (diffusers' do_classifier_free_guidance).
/// - Two branches, source and target (p2p, and the video method's propagation), under negative-prompt
///   inversion (Miyake et al. 2023) where the source's uncond and cond items are the same computation:
///   items [uncond target, cond source, cond target]; source eps = its cond item, target eps = CFG of the
///   other two. With a negative prompt (p2p) all four items run: [uncond src, uncond tgt, cond src, cond tgt].
public struct BatchLayout: Sendable, Equatable {
    /// Latent branches per slot (1, or 2: source then target).
    public let branches: Int
    /// Per UNet item of a slot: the branch whose latents it takes.
    public let itemBranch: [Int]
    /// Per branch: its model output as (item, weight) terms.
    public let terms: [[Term]]

    public struct Term: Sendable, Equatable {
        public let item: Int
        public let weight: Float
    }

    /// UNet items per slot.
    public var items: Int { itemBranch.count }

    /// Text-to-image / SDEdit / DDIM sampling: one branch, [uncond, cond] under CFG, else [cond].
    public static func cfg(_ g: Float) -> BatchLayout {
        guard ClassifierFreeGuidance.isEnabled(g) else {
            return BatchLayout(branches: 1, itemBranch: [0], terms: [[Term(item: 0, weight: 1)]])
        }
        return BatchLayout(branches: 1, itemBranch: [0, 0], terms: [[Term(item: 0, weight: 1 - g), Term(item: 1, weight: g)]])
    }

    /// Whether InstructPix2Pix guidance runs three items (diffusers: guidance > 1 and image guidance >= 1).
    public static func instructGuided(_ g: Float, image gi: Float) -> Bool { g > 1 && gi >= 1 }

    /// InstructPix2Pix: one branch, [text, image-only, uncond] (Eq. 3), else [text].
    public static func instruct(_ g: Float, image gi: Float) -> BatchLayout {
        guard instructGuided(g, image: gi) else {
            return BatchLayout(branches: 1, itemBranch: [0], terms: [[Term(item: 0, weight: 1)]])
        }
        return BatchLayout(branches: 1, itemBranch: [0, 0, 0],
                           terms: [[Term(item: 0, weight: g), Term(item: 1, weight: gi - g), Term(item: 2, weight: 1 - gi)]])
    }

    /// Source and target branches under negative-prompt inversion: [uncond tgt, cond src, cond tgt].
    public static func twoBranchNPI(_ g: Float) -> BatchLayout {
        BatchLayout(branches: 2, itemBranch: [1, 0, 1],
                    terms: [[Term(item: 1, weight: 1)], [Term(item: 0, weight: 1 - g), Term(item: 2, weight: g)]])
    }

    /// Source and target branches with their own unconditional items: [uncond src, uncond tgt, cond src, cond tgt].
    public static func twoBranchFull(_ g: Float) -> BatchLayout {
        BatchLayout(branches: 2, itemBranch: [0, 1, 0, 1],
                    terms: [[Term(item: 0, weight: 1 - g), Term(item: 2, weight: g)],
                            [Term(item: 1, weight: 1 - g), Term(item: 3, weight: g)]])
    }

    /// The p2p controller's view of this layout (nil for one-branch layouts).
    var p2pLayout: P2PController.Layout? {
        switch items { case 3 where branches == 2: return .three; case 4: return .four; default: return nil }
    }

    /// Video propagation: per target-branch item, the source-branch item whose attention map it takes
    /// (the same conditioning role: uncond from uncond, cond from cond; under NPI the source's uncond is
    /// its cond item).
    var propagationSources: [Int: Int] {
        switch (branches, items) {
        case (2, 3): return [0: 1, 2: 1]
        case (2, 4): return [1: 0, 3: 2]
        default: return [:]
        }
    }

    /// model outputs [S * items, C, h, w] (slot-major) -> per-branch outputs [S * branches, C, h, w].
    func combine(_ eps: Tensor, slots: Int, backend be: Backend) throws -> Tensor {
        precondition(eps.shape[0] == slots * items, "BatchLayout.combine: \(eps.shape) for \(slots) slots of \(items)")
        if items == 1 && branches == 1 { return eps }
        let out = try be.output([slots * branches] + Array(eps.shape.dropFirst()))
        for s in 0..<slots {
            for (b, ts) in terms.enumerated() {
                let y = out.slice0(s * branches + b, 1)
                _ = try be.lincomb(ts.map { ($0.weight, eps.slice0(s * items + $0.item, 1)) }, into: y)
            }
        }
        return out
    }
}

/// Classifier-free guidance switches, shared by generate and the editing methods.
public enum ClassifierFreeGuidance {
    /// Whether guidance `g` needs the unconditional branch.
    public static func isEnabled(_ g: Float) -> Bool { g > 1 }

    /// Throws `.invalidArgument` naming "guidance" when `g` is NaN or infinite.
    public static func validate(_ g: Float, name: String = "guidance") throws {
        guard g.isFinite else { throw DiffEditError.invalidArgument("\(name): \(g) is not a finite number") }
    }

    /// eps [2B, ...] = [uncond; cond] -> [B, ...]: u + g (c - u) (BatchLayout.cfg's combination).
    public static func combine(_ eps: Tensor, guidance g: Float, backend: Backend = .cpu) throws -> Tensor {
        guard eps.rank >= 1, eps.shape[0] % 2 == 0, eps.shape[0] > 0 else {
            throw DiffEditError.invalidArgument("guidance: model output batch \(eps.shape) is not [uncond; cond]")
        }
        let half = eps.shape[0] / 2
        return try backend.lincomb([(1 - g, eps.slice0(0, half)), (g, eps.slice0(half, half))])
    }
}
