import FoundationEssentials

/// EditOptions after method resolution, defaults and validation. Every error names the field at fault.
public struct ResolvedEdit: Sendable {
    public static let defaultSteps = 30
    public static let defaultGuidance: Float = 7.5
    public static let defaultImageGuidance: Float = 1.5
    public static let defaultStrength: Float = 0.8
    /// inpaint's default strength: 1, pure noise inside the mask (diffusers' StableDiffusionInpaintPipeline).
    public static let defaultInpaintStrength: Float = 1
    public static let defaultCrossReplace: Float = 0.8
    public static let defaultSelfReplace: Float = 0.4
    public static let defaultBlendThreshold: Float = 0.3
    public static let defaultBlendDilation = 1
    public static let maxBlendDilation = 8
    public static let maxNewWordWeight: Float = 100

    public var method: EditMethod
    public var prompt: String
    public var sourcePrompt: String
    public var negativePrompt: String?
    public var guidance: Float
    public var imageGuidance: Float
    public var strength: Float
    public var steps: Int
    public var crossReplace: Float
    public var selfReplace: Float
    public var blendThreshold: Float
    public var blendDilation: Int
    public var directInversion: Bool
    /// p2p: EditOptions.uncondMix resolved, in [0, 1].
    public var uncondMix: Float
    /// p2p: EditOptions.newWordWeight resolved, in [0, maxNewWordWeight].
    public var newWordWeight: Float
    /// p2p: EditOptions.blendNextWord resolved.
    public var blendNextWord: Bool

    /// The method `auto` stands for: instruct for an 8-channel checkpoint, inpaint for a 9-channel
    /// (inpainting) checkpoint, else p2p when a source prompt is given, else sdedit.
    public static func resolveMethod(_ m: EditMethod, unetInChannels: Int, sourcePrompt: String?) -> EditMethod {
        guard m == .auto else { return m }
        if unetInChannels == 8 { return .instruct }
        if unetInChannels == 9 { return .inpaint }
        if let s = sourcePrompt, !TextUtil.trimmingWhitespace(s).isEmpty { return .p2p }
        return .sdedit
    }

    /// `defaults`: the model's recommended settings (EditDefaults), used before the static defaults.
    public init(options o: EditOptions, unetInChannels inCh: Int, imageWidth w: Int, imageHeight h: Int,
                defaults md: EditDefaults? = nil) throws {
        guard w > 0, h > 0 else { throw DiffEditError.invalidArgument("image: size \(w)x\(h) is empty") }
        let m = ResolvedEdit.resolveMethod(o.method, unetInChannels: inCh, sourcePrompt: o.sourcePrompt)
        switch (m, inCh) {
        case (.instruct, 8), (.inpaint, 9): break
        case (.instruct, _):
            throw DiffEditError.unsupported("method: instruct needs an InstructPix2Pix checkpoint (UNet with 8 input channels); this model's UNet has \(inCh)\(inCh == 9 ? " (an inpainting checkpoint: use method inpaint or auto, with a mask)" : "")")
        case (.inpaint, _):
            throw DiffEditError.unsupported("method: inpaint needs an inpainting checkpoint (UNet with 9 input channels); this model's UNet has \(inCh)")
        case (_, 4): break
        case (_, 8):
            throw DiffEditError.unsupported("method: \(m.rawValue) needs a text-to-image checkpoint (UNet with 4 input channels); this model's UNet has 8 (InstructPix2Pix): use method instruct or auto")
        case (_, 9):
            throw DiffEditError.unsupported("method: \(m.rawValue) needs a text-to-image checkpoint (UNet with 4 input channels); this model's UNet has 9 (an inpainting checkpoint): use method inpaint or auto, with a mask")
        default:
            throw DiffEditError.unsupported("method: \(m.rawValue) does not support a UNet with \(inCh) input channels")
        }
        if m == .inpaint && o.mask == nil {
            throw DiffEditError.invalidArgument("mask: method inpaint needs a mask of the region to repaint (white = repaint, black = keep; --mask)")
        }
        method = m
        prompt = o.prompt
        if m == .instruct && TextUtil.trimmingWhitespaceAndNewlines(o.prompt).isEmpty {
            throw DiffEditError.invalidArgument("prompt: empty; instruct needs an instruction such as \"make the circle blue\"")
        }
        let src = o.sourcePrompt ?? ""
        if (m == .p2p || m == .ddim) && TextUtil.trimmingWhitespaceAndNewlines(src).isEmpty {
            throw DiffEditError.invalidArgument("sourcePrompt: method \(m.rawValue) needs a source prompt describing the input image (--source-prompt)")
        }
        sourcePrompt = src
        negativePrompt = o.negativePrompt
        guidance = o.guidance ?? md?.guidance ?? ResolvedEdit.defaultGuidance
        guard guidance.isFinite else { throw DiffEditError.invalidArgument("guidance: \(guidance) is not a finite number") }
        imageGuidance = o.imageGuidance ?? md?.image_guidance ?? ResolvedEdit.defaultImageGuidance
        guard imageGuidance.isFinite else { throw DiffEditError.invalidArgument("imageGuidance: \(imageGuidance) is not a finite number") }
        strength = o.strength ?? (m == .inpaint ? ResolvedEdit.defaultInpaintStrength : md?.strength ?? ResolvedEdit.defaultStrength)
        guard strength.isFinite, strength > 0, strength <= 1 else {
            throw DiffEditError.invalidArgument("strength: \(strength) must be in (0, 1]")
        }
        steps = o.steps ?? md?.steps ?? ResolvedEdit.defaultSteps
        guard steps >= 1 && steps <= 1000 else { throw DiffEditError.invalidArgument("steps: \(steps) must be between 1 and 1000") }
        crossReplace = o.crossReplaceSteps ?? md?.cross_replace_steps ?? ResolvedEdit.defaultCrossReplace
        guard crossReplace.isFinite, crossReplace >= 0, crossReplace <= 1 else {
            throw DiffEditError.invalidArgument("crossReplaceSteps: \(crossReplace) must be in [0, 1]")
        }
        selfReplace = o.selfReplaceSteps ?? md?.self_replace_steps ?? ResolvedEdit.defaultSelfReplace
        guard selfReplace.isFinite, selfReplace >= 0, selfReplace <= 1 else {
            throw DiffEditError.invalidArgument("selfReplaceSteps: \(selfReplace) must be in [0, 1]")
        }
        blendThreshold = o.blendThreshold ?? md?.blend_threshold ?? ResolvedEdit.defaultBlendThreshold
        guard blendThreshold.isFinite, blendThreshold >= 0, blendThreshold < 1 else {
            throw DiffEditError.invalidArgument("blendThreshold: \(blendThreshold) must be in [0, 1)")
        }
        blendDilation = o.blendDilation ?? md?.blend_dilation ?? ResolvedEdit.defaultBlendDilation
        guard (0...ResolvedEdit.maxBlendDilation).contains(blendDilation) else {
            throw DiffEditError.invalidArgument("blendDilation: \(blendDilation) must be between 0 and \(ResolvedEdit.maxBlendDilation)")
        }
        directInversion = o.directInversion ?? md?.direct_inversion ?? false
        uncondMix = o.uncondMix ?? md?.uncond_mix ?? 0
        guard uncondMix.isFinite, uncondMix >= 0, uncondMix <= 1 else {
            throw DiffEditError.invalidArgument("uncondMix: \(uncondMix) must be in [0, 1]")
        }
        newWordWeight = o.newWordWeight ?? md?.new_word_weight ?? 1
        guard newWordWeight.isFinite, newWordWeight >= 0, newWordWeight <= ResolvedEdit.maxNewWordWeight else {
            throw DiffEditError.invalidArgument("newWordWeight: \(newWordWeight) must be between 0 and \(Int(ResolvedEdit.maxNewWordWeight))")
        }
        blendNextWord = o.blendNextWord ?? md?.blend_next_word ?? false
        for (word, f) in o.reweight {
            guard f.isFinite else { throw DiffEditError.invalidArgument("reweight: factor \(f) for \"\(word)\" is not finite") }
        }
        if let mask = o.mask, mask.width != w || mask.height != h {
            throw DiffEditError.invalidArgument("mask: \(mask.width)x\(mask.height) does not match the image size \(w)x\(h)")
        }
        if let n = o.initNoise, !n.buffer.allSatisfy({ $0.isFinite }) {
            throw DiffEditError.invalidArgument("initNoise: contains NaN or infinite values")
        }
    }

    /// The p2p re-weighting to use: `user`, plus newWordWeight (when != 1) on the edited words unless `user`
    /// names them. Edited words: for a word swap (as many words as the source), the words that differ from
    /// the source's word at the same place ("blue" in "a red circle and a blue square" -> "a blue circle and a
    /// blue square"); otherwise the words the source prompt lacks. Articles (a, an, the: "an orange circle" ->
    /// "a black circle") are never edited words. Re-weighting acts on every occurrence.
    public func reweight(user: [String: Float]) -> [String: Float] {
        var out = user
        guard newWordWeight != 1 else { return out }
        let ws = PromptAlignment.words(sourcePrompt), wt = PromptAlignment.words(prompt)
        let edited = ws.count == wt.count ? zip(ws, wt).filter { $0 != $1 }.map { $1 } : wt.filter { !ws.contains($0) }
        for w in edited where out[w] == nil && !ResolvedEdit.articles.contains(w.lowercased()) { out[w] = newWordWeight }
        return out
    }

    static let articles: Set<String> = ["a", "an", "the"]

    /// p2p's unconditional embedding for the target branch under negative-prompt inversion:
    /// uncondMix * empty + (1 - uncondMix) * source ([1, 77, D] each); `source` itself when uncondMix is 0.
    public func targetUncond(source: Tensor, empty: () throws -> Tensor) rethrows -> Tensor {
        guard uncondMix > 0 else { return source }
        let e = try empty()
        precondition(e.shape == source.shape, "targetUncond: \(e.shape) vs \(source.shape)")
        let a = uncondMix, b = 1 - uncondMix
        return SchedulerMath.map2(e, source) { a * $0 + b * $1 }
    }
}
