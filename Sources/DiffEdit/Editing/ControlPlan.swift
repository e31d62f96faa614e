/// The ControlNets of a `DenoisePlan` (the engine's ControlNet hook): before each UNet call, every net whose
/// [start, end] covers the step runs on the controlled items of the UNet batch (same scaled latents, timestep
/// and text conditioning as the UNet; diffusers' control_model_input) and the sum of their scaled residuals
/// (MultiControlNet) goes to the UNet as `UNetResiduals`.
///
/// Which items: the target branch's (`items(layout:guessMode:)`): every item of one-branch layouts (generate,
/// sdedit, instruct); ddim/p2p's source-branch items get none, so the source branch replays the inversion (which
/// ran without ControlNet: it must reconstruct the input) and p2p's attention maps stay the input's. Guess mode
/// (diffusers): only the target's conditional item, residuals scaled by logspace(-1, 0).
struct ControlPlan {
    struct Hook {
        let spec: ControlSpec
        /// The embedded control map of each controlled item, [S * K, C0, h, w] (constant over the steps).
        let condition: Tensor
    }
    let hooks: [Hook]
    /// The UNet items of a slot that get residuals (K of the layout's G).
    let items: [Int]
    let itemsPerSlot: Int
    let slots: Int
    let guessMode: Bool
    /// The controlled items' text conditioning, [S * K, L, D], and SDXL's added conditioning, [S * K, P].
    let embeddings: Tensor
    let added: Tensor?

    /// The items of a slot that get residuals: the target (last) branch's, or in guess mode its conditional item
    /// (the term with the largest guidance weight: cond under CFG, the text item of InstructPix2Pix).
    static func items(layout: BatchLayout, guessMode: Bool) -> [Int] {
        let target = layout.terms[layout.branches - 1]
        if guessMode, let cond = target.max(by: { $0.weight < $1.weight }) { return [cond.item] }
        return layout.itemBranch.indices.filter { layout.itemBranch[$0] == layout.branches - 1 }
    }

    /// - Parameters:
    ///   - maps: per spec, per slot, the control map [1, 3, H, W] (`ControlPreprocessor.map`).
    ///   - embeddings: the plan's text conditioning [S * G, L, D]; latentSize: the UNet's (h, w).
    init(specs: [ControlSpec], maps: [[Tensor]], layout: BatchLayout, slots: Int, embeddings: Tensor, added: Tensor? = nil,
         latentSize: (Int, Int), guessMode: Bool, backend be: Backend) throws {
        precondition(specs.count == maps.count && maps.allSatisfy { $0.count == slots }, "ControlPlan: maps per spec and slot")
        items = Self.items(layout: layout, guessMode: guessMode)
        itemsPerSlot = layout.items
        self.slots = slots
        self.guessMode = guessMode
        let K = items.count
        self.embeddings = try LatentOps.gatherItems(be, try be.onDevice(embeddings), slots: slots, items: items, of: layout.items)
        let its = items
        if let a = added { self.added = try LatentOps.gatherItems(be, try be.onDevice(a), slots: slots, items: its, of: layout.items) }
        else { self.added = nil }
        var hooks: [Hook] = []
        for (n, (spec, m)) in zip(specs, maps).enumerated() {
            let e = try spec.net.embedCondition(Tensor.cat0(m))                            // [S, C0, h', w']
            guard e.shape[2] == latentSize.0, e.shape[3] == latentSize.1 else {
                throw DiffEditError.invalidArgument("controls[\(n)]: the control map \(m[0].shape[3])x\(m[0].shape[2]) gives \(e.shape[3])x\(e.shape[2]) in \(spec.net.origin) (factor \(spec.net.conditionFactor)), the UNet's latents are \(latentSize.1)x\(latentSize.0)")
            }
            let inner = e.count / slots
            var cond = e
            if K > 1 {                                                                    // [S * K, C0, h, w]
                cond = try be.output([slots * K] + Array(e.shape.dropFirst()))
                try be.copyStrided(shape: [slots, K, inner], from: e, fromStrides: [inner, 0, 1], to: cond, toStrides: [K * inner, inner, 1])
            }
            hooks.append(Hook(spec: spec, condition: cond))
        }
        self.hooks = hooks
    }

    /// The summed residuals of the nets acting at step i of n for the UNet batch x [S * G, C, h, w]; nil when none acts.
    func residuals(step i: Int, of n: Int, batch x: Tensor, timestep t: Float, backend be: Backend) throws -> UNetResiduals? {
        let acting = hooks.filter { $0.spec.acts(step: i, of: n) }
        guard !acting.isEmpty else { return nil }
        let xs = try LatentOps.gatherItems(be, x, slots: slots, items: items, of: itemsPerSlot)   // [S * K, C, h, w]
        var sum: (down: [Tensor], mid: Tensor)? = nil
        for h in acting {
            let r = try h.spec.net.residuals(xs, timestep: t, encoderHiddenStates: embeddings, added: added, condition: h.condition,
                                             scale: h.spec.scale, guessMode: guessMode)
            if let s = sum {
                for (a, b) in zip(s.down, r.down) { _ = try be.add(a, b, inPlace: true) }
                _ = try be.add(s.mid, r.mid, inPlace: true)
            } else {
                sum = r
            }
        }
        let all = items == Array(0..<itemsPerSlot)
        let batchItems = all ? nil : (0..<slots).flatMap { s in items.map { s * itemsPerSlot + $0 } }
        return UNetResiduals(down: sum!.down, mid: sum!.mid, items: batchItems)
    }
}

extension ControlPlan {
    /// Checks every spec's fields and that its net fits `unet` (a ControlNet for another base: `.model` naming the
    /// tensor), before any heavy work.
    static func validate(_ specs: [ControlSpec], unet: UNet2DConditionModel) throws {
        for (i, s) in specs.enumerated() {
            try s.validate("controls[\(i)]")
            try s.net.checkFits(unet.config, unetOrigin: unet.origin)
        }
    }
}
