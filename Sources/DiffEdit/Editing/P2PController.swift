import CDiffKernels

/// Prompt-to-Prompt attention control (Hertz et al., ICLR 2023) for a batch laid out as
/// [uncond source, uncond target, cond source, cond target] (`.four`), or, under negative-prompt inversion
/// where the source branch's uncond and cond items are the same computation, [uncond target, cond source,
/// cond target] (`.three`, 25% less UNet work); only the conditional items are edited, as in the paper's
/// code. Mirrors tools/p2p_reference.py.
///
/// - cross-attention (Sec. 3.2), for steps < int(crossReplace * (steps + 1)): word swap
///   (M*_t = M_t^source through the replacement mapper), refinement (aligned tokens take the source map,
///   new tokens keep their own), re-weighting (target token columns scaled by the equalizer);
/// - self-attention injection: for steps < int(selfReplace * steps), self-attention layers whose height is
///   at most the LocalBlend height use the source branch's attention map with their own values;
/// - LocalBlend (Sec. 3.3) through `localBlend` (maps stored after editing).
public final class P2PController: AttentionController {
    /// Batch layouts: where the conditional source and target items sit.
    public enum Layout: Sendable {
        case four    // [uncond src, uncond tgt, cond src, cond tgt]
        case three   // [uncond tgt, cond src, cond tgt]
        public var batch: Int { self == .four ? 4 : 3 }
        /// Index of the conditional source item (the conditional target follows it).
        public var sourceCond: Int { self == .four ? 2 : 1 }
    }

    public let alignment: PromptAlignment
    public let layout: Layout
    public let steps: Int
    /// The denoising step the next UNet forward belongs to (set by the pipeline).
    public var step: Int = 0
    public let crossEnd: Int
    public let selfEnd: Int
    public let blendHeight: Int
    public let localBlend: LocalBlend?
    private let backend: Backend
    /// Word swap: the replacement mapper; refinement: M[w, n] = alpha[n] where w = mapper[n] (so base @ M
    /// gathers the aligned source columns); [L, L] in backend memory. Refinement also keeps (1 - alpha).
    private lazy var mapperTensor: Tensor? = {
        let L = PromptAlignment.maxLength
        if alignment.isReplace { return try? backend.onDevice(Tensor(shape: [L, L], values: alignment.replaceMapper)) }
        var m = [Float](repeating: 0, count: L * L)
        for n in 0..<L {
            let w = alignment.refineMapper[n]
            if w >= 0 && w < L { m[w * L + n] = alignment.refineAlphas[n] }
        }
        return try? backend.onDevice(Tensor(shape: [L, L], values: m))
    }()
    private lazy var keepTensor: Tensor? = try? backend.onDevice(Tensor(shape: [PromptAlignment.maxLength],
                                                                        values: alignment.refineAlphas.map { 1 - $0 }))
    private lazy var equalizerTensor: Tensor? = alignment.equalizer.flatMap {
        try? backend.onDevice(Tensor(shape: [PromptAlignment.maxLength], values: $0))
    }

    public init(alignment: PromptAlignment, steps: Int, crossReplace: Float, selfReplace: Float,
                blendHeight: Int, localBlend: Bool, blendThreshold: Float = ResolvedEdit.defaultBlendThreshold,
                blendDilation: Int = ResolvedEdit.defaultBlendDilation, backend: Backend, layout: Layout = .four) {
        self.alignment = alignment
        self.layout = layout
        self.steps = steps
        self.crossEnd = Int(Double(crossReplace) * Double(steps + 1))
        self.selfEnd = Int(Double(selfReplace) * Double(steps))
        self.blendHeight = blendHeight
        self.backend = backend
        self.localBlend = (localBlend && alignment.hasBlendWords)
            ? LocalBlend(alphaSource: alignment.blendSource, alphaTarget: alignment.blendTarget,
                         height: blendHeight, steps: steps, threshold: blendThreshold, dilation: blendDilation)
            : nil
    }

    /// Height of the LocalBlend maps: among the down-block cross-attention resolutions, the one closest to
    /// max(latentHeight / 4, min(16, latentHeight)) (ties: the larger). The paper's maps are 16x16, a
    /// quarter of SD's 64x64 latents; a small latent keeps maps of at least 16 (or its own size), because
    /// at 4x4 the 3x3 max pool spreads any word's mask over the whole image and LocalBlend does nothing.
    public static func blendHeight(unet config: UNetConfig, latentHeight: Int) -> Int {
        var heights: [Int] = []
        var f = 1
        for (i, t) in config.down_block_types.enumerated() {
            if t.contains("CrossAttn") { heights.append(latentHeight / f) }
            if i < config.down_block_types.count - 1 { f *= 2 }
        }
        let target = max(Double(latentHeight) / 4, Double(min(16, latentHeight)))
        return heights.sorted { a, b in
            let da = abs(Double(a) - target), db = abs(Double(b) - target)
            return da != db ? da < db : a > b
        }.first ?? max(latentHeight / 4, 1)
    }

    public func selfAttentionMapSource(site: AttentionSite, batch: Int) -> [Int]? {
        guard batch == layout.batch, step < selfEnd, site.height <= blendHeight else { return nil }
        return layout == .four ? [0, 1, 2, 2] : [0, 1, 1]
    }

    public func wantsCrossAttentionProbs(site: AttentionSite) -> Bool {
        step < crossEnd || (localBlend?.wants(site) ?? false)
    }

    public func editCrossAttention(site: AttentionSite, probs: Tensor) throws {
        let b = layout.batch, sc = layout.sourceCond
        guard probs.rank == 4, probs.shape[0] == b else {
            throw DiffEditError.invalidArgument("p2p: cross-attention probabilities at \(site.name) have shape \(probs.shape), expected [\(b), heads, Lq, Lk]")
        }
        let L = PromptAlignment.maxLength
        let heads = probs.shape[1], lq = probs.shape[2], lk = probs.shape[3]
        guard lk == L else {
            throw DiffEditError.unsupported("p2p: \(site.name) attends to \(lk) text tokens; prompt-to-prompt needs \(L)")
        }
        let per = heads * lq * lk
        if step < crossEnd {
            // all backend ops on the probabilities where they are (a resident backend keeps them)
            guard let mapper = mapperTensor else {
                throw DiffEditError.outOfMemory("p2p: could not place the \(L)x\(L) token mapper in backend memory")
            }
            let base = Tensor(shape: [heads * lq, L], storage: probs.storage, offset: probs.offset + sc * per)
            let rep = Tensor(shape: [heads * lq, L], storage: probs.storage, offset: probs.offset + (sc + 1) * per)
            let rows = heads * lq
            if alignment.isReplace {
                // new[r, n] = sum_w base[r, w] * mapper[w, n]       [heads*Lq, 77] @ [77, 77]
                try backend.gemm(m: rows, n: L, k: L, a: base.opData, lda: L, b: mapper.opData, ldb: L,
                                 c: rep.opData, ldc: L)
            } else {
                // t[n] = base[mapper[n]] * alpha[n] + t[n] * (1 - alpha[n]): t *= (1 - alpha); t += base @ M
                guard let keep = keepTensor else { throw DiffEditError.outOfMemory("p2p: could not place the refinement alphas in backend memory") }
                _ = try backend.binary(DE_BINARY_MUL, rep, keep, inPlace: true)
                try backend.gemm(m: rows, n: L, k: L, a: base.opData, lda: L, b: mapper.opData, ldb: L,
                                 c: rep.opData, ldc: L, beta: 1)
            }
            if alignment.equalizer != nil {
                guard let eq = equalizerTensor else { throw DiffEditError.outOfMemory("p2p: could not place the equalizer in backend memory") }
                _ = try backend.binary(DE_BINARY_MUL, rep, eq, inPlace: true)
            }
        }
        if let lb = localBlend, lb.wants(site) { try lb.accumulate(site: site, probs: probs, first: sc, backend: backend) }
    }
}
