import FoundationEssentials

/// Settings a model recommends for editing, used where the caller leaves a setting unset (nil in
/// EditOptions; 0 in the C ABI). A diffusers folder carries them in `diffedit.json`
/// (`{"guidance": 4.0, "image_guidance": 1.5, "steps": 20, "strength": 0.8, "blend_threshold": 0.3,
/// "blend_dilation": 1, "direct_inversion": true, "cross_replace_steps": 0.8, "self_replace_steps": 0.4,
/// "uncond_mix": 0.6, "new_word_weight": 2, "blend_next_word": true}`, every
/// field optional); a
/// single file in its `__metadata__` under "diffedit.edit_defaults" (the same JSON). Models without them
/// use ResolvedEdit's defaults (the usual SD values: guidance 7.5, image guidance 1.5, 30 steps).
/// The toy models use this: their best guidance differs from real SD's.
public struct EditDefaults: Codable, Sendable, Equatable {
    public var guidance: Float?
    public var image_guidance: Float?
    public var steps: Int?
    public var strength: Float?
    /// p2p's LocalBlend mask threshold in [0, 1) (the paper's 0.3 by default).
    public var blend_threshold: Float?
    /// p2p: LocalBlend's max-pool radius (the paper's 1 by default).
    public var blend_dilation: Int?
    /// p2p: direct inversion (EditOptions.directInversion) on by default.
    public var direct_inversion: Bool?
    /// p2p: attention-control step fractions (the paper's 0.8 / 0.4 by default).
    public var cross_replace_steps: Float?
    public var self_replace_steps: Float?
    /// p2p: EditOptions.uncondMix, in [0, 1] (0 by default: plain negative-prompt inversion).
    public var uncond_mix: Float?
    /// p2p: EditOptions.newWordWeight, in [0, 100] (1 by default: off).
    public var new_word_weight: Float?
    /// p2p: EditOptions.blendNextWord (off by default).
    public var blend_next_word: Bool?

    public init(guidance: Float? = nil, image_guidance: Float? = nil, steps: Int? = nil, strength: Float? = nil,
                blend_threshold: Float? = nil, blend_dilation: Int? = nil, direct_inversion: Bool? = nil,
                cross_replace_steps: Float? = nil, self_replace_steps: Float? = nil,
                uncond_mix: Float? = nil, new_word_weight: Float? = nil, blend_next_word: Bool? = nil) {
        self.guidance = guidance; self.image_guidance = image_guidance; self.steps = steps; self.strength = strength
        self.blend_threshold = blend_threshold; self.blend_dilation = blend_dilation
        self.direct_inversion = direct_inversion
        self.cross_replace_steps = cross_replace_steps; self.self_replace_steps = self_replace_steps
        self.uncond_mix = uncond_mix; self.new_word_weight = new_word_weight; self.blend_next_word = blend_next_word
    }

    public static let fileName = "diffedit.json"
    public static let metadataKey = "diffedit.edit_defaults"

    /// Decodes and checks the values (finite; steps 1...1000; strength in (0, 1]); errors name `origin` and the field.
    public static func decode(_ data: Data, origin: String) throws -> EditDefaults {
        let d = try ConfigFile.decode(EditDefaults.self, from: data, origin: origin)
        for (name, v) in [("guidance", d.guidance), ("image_guidance", d.image_guidance), ("strength", d.strength),
                          ("blend_threshold", d.blend_threshold), ("cross_replace_steps", d.cross_replace_steps),
                          ("self_replace_steps", d.self_replace_steps), ("uncond_mix", d.uncond_mix),
                          ("new_word_weight", d.new_word_weight)] {
            if let v, !v.isFinite { throw DiffEditError.model("\(origin): field \(name) is not a finite number") }
        }
        if let s = d.steps, !(1...1000).contains(s) { throw DiffEditError.model("\(origin): field steps \(s) must be between 1 and 1000") }
        if let s = d.strength, !(s > 0 && s <= 1) { throw DiffEditError.model("\(origin): field strength \(s) must be in (0, 1]") }
        if let t = d.blend_threshold, !(t >= 0 && t < 1) { throw DiffEditError.model("\(origin): field blend_threshold \(t) must be in [0, 1)") }
        if let k = d.blend_dilation, !(0...ResolvedEdit.maxBlendDilation).contains(k) {
            throw DiffEditError.model("\(origin): field blend_dilation \(k) must be between 0 and \(ResolvedEdit.maxBlendDilation)")
        }
        if let w = d.new_word_weight, !(w >= 0 && w <= ResolvedEdit.maxNewWordWeight) {
            throw DiffEditError.model("\(origin): field new_word_weight \(w) must be between 0 and \(Int(ResolvedEdit.maxNewWordWeight))")
        }
        for (name, v) in [("cross_replace_steps", d.cross_replace_steps), ("self_replace_steps", d.self_replace_steps),
                          ("uncond_mix", d.uncond_mix)] {
            if let v, !(v >= 0 && v <= 1) { throw DiffEditError.model("\(origin): field \(name) \(v) must be in [0, 1]") }
        }
        return d
    }

    /// `folder/diffedit.json` when present.
    static func load(folder: String) throws -> EditDefaults? {
        let p = CheckpointLoader.join(folder, fileName)
        guard CheckpointLoader.isFile(p) else { return nil }
        return try decode(try ConfigFile.readData(p), origin: p)
    }
}
