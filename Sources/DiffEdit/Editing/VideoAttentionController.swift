/// Attention control of the consistent video method for a UNet batch laid out slot-major:
/// item = slot * group + branch, one slot per frame of a `VideoWindow`.
///
/// - Cross-frame self-attention: item (s, b) attends to the keys/values of items (s', b) for s' in
///   `sources[s]` (the same branch of the anchor, keyframe, previous frame and itself), concatenated
///   along tokens (Tune-A-Video / Text2Video-Zero style sparse-causal attention).
/// - Propagation (TokenFlow-like, soft): while `step < propagationEnd`, a target-branch item (s, b) of a
///   propagating slot takes its attention map, softmax(Q K^T / sqrt(d)), from the source-branch item
///   (s, sourceBranch[b]) -- queries of frame s against keys of the anchor, keyframe, previous frame and
///   itself, all computed from the *source* video -- and applies it to its own branch's (edited) values.
///   The edited frame's self-attention output is thus the edited keyframe/anchor/previous features
///   gathered at the positions where the source video's features correspond. This is the soft
///   (attention-weighted) form of TokenFlow's nearest-neighbour feature propagation.
/// - Prompt-to-Prompt per frame: `p2p[s]` (the image path's batch layout, 3 or 4 items per slot) edits the
///   slot's cross-attention maps and, when not propagating, injects self-attention maps as for an image.
final class VideoAttentionController: AttentionController {
    let group: Int
    let sources: [[Int]]
    let propagate: [Bool]
    /// branch -> the source branch it takes maps from when propagating.
    let sourceBranch: [Int: Int]
    let propagationEnd: Int
    let crossFrame: Bool
    let p2p: [P2PController]?
    /// The denoising step of the next UNet forward (set by the loop).
    var step: Int = 0 {
        didSet { p2p?.forEach { $0.step = step } }
    }

    init(group: Int, window: VideoWindow, sourceBranch: [Int: Int], propagationEnd: Int, crossFrame: Bool,
         p2p: [P2PController]?) {
        precondition(p2p == nil || (p2p!.allSatisfy { $0.layout.batch == group } && p2p!.count == window.frames.count),
                     "VideoAttentionController: p2p layout")
        self.group = group
        self.sources = crossFrame ? window.sources : window.sources.indices.map { [$0] }
        self.propagate = window.propagate
        self.sourceBranch = sourceBranch
        self.propagationEnd = propagationEnd
        self.crossFrame = crossFrame
        self.p2p = p2p
    }

    var slots: Int { sources.count }

    func selfAttentionKeySources(site: AttentionSite, batch: Int) -> [[Int]]? {
        guard crossFrame, batch == slots * group else { return nil }
        var out: [[Int]] = []
        out.reserveCapacity(batch)
        for s in 0..<slots {
            for b in 0..<group { out.append(sources[s].map { $0 * group + b }) }
        }
        return out
    }

    func selfAttentionMapSource(site: AttentionSite, batch: Int) -> [Int]? {
        guard batch == slots * group else { return nil }
        var out = Array(0..<batch)
        var changed = false
        for s in 0..<slots {
            if propagate[s] && step < propagationEnd {
                for (b, src) in sourceBranch { out[s * group + b] = s * group + src; changed = true }
            } else if let c = p2p?[s], let m = c.selfAttentionMapSource(site: site, batch: group) {
                for b in 0..<group { out[s * group + b] = s * group + m[b] }
                changed = true
            }
        }
        return changed ? out : nil
    }

    func wantsCrossAttentionProbs(site: AttentionSite) -> Bool {
        p2p?.contains { $0.wantsCrossAttentionProbs(site: site) } ?? false
    }

    func editCrossAttention(site: AttentionSite, probs: Tensor) throws {
        guard let ctrls = p2p else { return }
        guard probs.rank == 4, probs.shape[0] == slots * group else {
            throw DiffEditError.invalidArgument("video p2p: cross-attention probabilities at \(site.name) have shape \(probs.shape), expected [\(slots * group), heads, Lq, Lk]")
        }
        let per = group * probs.shape[1] * probs.shape[2] * probs.shape[3]
        for (s, c) in ctrls.enumerated() {
            let view = Tensor(shape: [group] + Array(probs.shape.dropFirst()), storage: probs.storage,
                              offset: probs.offset + s * per)                       // [4, heads, Lq, Lk]
            try c.editCrossAttention(site: site, probs: view)
        }
    }
}
