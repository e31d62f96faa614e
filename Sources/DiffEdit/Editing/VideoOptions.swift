/// How `VideoEditor` edits a clip.
///
/// - `consistent` (default): the zero-shot temporally consistent method (see `VideoEditor`): shared noise,
///   cross-frame self-attention to an anchor frame, the window's keyframe and the previous frame, and the
///   edited keyframes' features propagated to the other frames through the source video's own attention
///   correspondences.
/// - `perFrame`: the baseline: every frame edited on its own by `ImageEditor` with the same options and seed.
public enum VideoMode: String, Sendable, CaseIterable {
    case consistent
    case perFrame = "per-frame"
}

/// Options of a video edit: the image edit options (method, prompts, steps, seed, ...) plus the
/// temporal ones.
public struct VideoOptions: Sendable {
    /// Method, prompts, guidance, strength, steps, seed. `mask`, `initNoise` and `fullResolution` are
    /// honoured by the per-frame mode only (the consistent mode rejects initial noise, and a mask except for
    /// inpaint, where it is the region to repaint in every frame: `VideoStream` checks that).
    public var edit: EditOptions = EditOptions()
    public var mode: VideoMode = .consistent
    /// Frames per window: the first frame of each window is its keyframe. Memory grows with this, not with
    /// the clip length; the streaming latency is `keyframeInterval - 1` frames. 1 = every frame is a
    /// keyframe (zero latency: only the anchor frame is shared).
    public var keyframeInterval: Int = 4
    /// Fraction of the denoising steps (from the start) during which non-anchor frames take their
    /// self-attention maps from the source branch (feature propagation); 0 turns propagation off.
    public var propagation: Float = 1.0
    /// Cross-frame self-attention (anchor, keyframe, previous frame). Off: frames only share the noise.
    public var crossFrameAttention: Bool = true
    /// Latent nearest-neighbour propagation (`VideoTokenMatch`): while propagating, after each step the
    /// matched latent tokens of a frame are copied from its reference (keyframe, or anchor for keyframes).
    /// Off by default: on the fixture and on the toy instruct model it raised flicker (docs/video_quality.md).
    public var tokenMatching: Bool = false
    /// Source-static pixel fusion (`VideoPixelFusion`): pixels whose source neighbourhood did not change
    /// since the previous frame keep the previous edited frame's pixels.
    public var pixelFusion: Bool = true

    public static let maxKeyframeInterval = 16

    public init() {}
    public init(edit: EditOptions, mode: VideoMode = .consistent) { self.edit = edit; self.mode = mode }

    /// Throws on values out of range, naming the field.
    public func validate() throws {
        guard keyframeInterval >= 1 && keyframeInterval <= VideoOptions.maxKeyframeInterval else {
            throw DiffEditError.invalidArgument("keyframeInterval: \(keyframeInterval) must be between 1 and \(VideoOptions.maxKeyframeInterval)")
        }
        guard propagation.isFinite, propagation >= 0, propagation <= 1 else {
            throw DiffEditError.invalidArgument("propagation: \(propagation) must be in [0, 1]")
        }
        if mode == .consistent {
            if edit.initNoise != nil {
                throw DiffEditError.unsupported("initNoise: initial noise is supported by the per-frame video mode only")
            }
        }
    }
}
