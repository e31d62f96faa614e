/// Where an attention layer sits in the UNet, passed to an `AttentionController`.
public struct AttentionSite: Sendable {
    /// Stable name, e.g. "down_blocks.1.attentions.0.transformer_blocks.0.attn2".
    public let name: String
    /// true for cross-attention (attn2, keys from the text), false for self-attention (attn1).
    public let isCross: Bool
    /// "down", "mid" or "up".
    public let place: String
    public let heads: Int
    /// Spatial size of the query tokens (height * width = query length).
    public let height: Int
    public let width: Int

    public init(name: String, isCross: Bool, place: String, heads: Int, height: Int, width: Int) {
        self.name = name; self.isCross = isCross; self.place = place; self.heads = heads
        self.height = height; self.width = width
    }
}

/// Hooks into the UNet's attention layers for Prompt-to-Prompt and cross-frame (video) attention.
/// The UNet calls these for every attention layer in every forward pass; `batch` is the batch size of
/// that forward pass. A controller tracks the denoising step itself (the pipeline tells it).
public protocol AttentionController: AnyObject {
    /// Self-attention only. For each batch item i, the batch items whose keys and values item i attends
    /// to, concatenated along tokens in the given order (video: [anchor, previous, self]). nil = each
    /// item attends to itself only (normal attention).
    func selfAttentionKeySources(site: AttentionSite, batch: Int) -> [[Int]]?

    /// Self-attention only. For each batch item i, the batch item whose queries and keys (i.e. whose
    /// attention map) item i uses, with item i's own values (P2P self-attention injection: the target
    /// branch takes the source branch's map). nil = own map.
    func selfAttentionMapSource(site: AttentionSite, batch: Int) -> [Int]?

    /// Cross-attention only. When true, the UNet materialises probabilities [B, heads, Lq, Lk]
    /// (softmax(QK^T * scale)), calls `editCrossAttention`, then multiplies by V.
    func wantsCrossAttentionProbs(site: AttentionSite) -> Bool

    /// Cross-attention only. May read (store maps for LocalBlend) and modify `probs` in place
    /// (word swap, refinement, re-weighting). probs: [B, heads, Lq, Lk].
    func editCrossAttention(site: AttentionSite, probs: Tensor) throws
}

extension AttentionController {
    public func selfAttentionKeySources(site: AttentionSite, batch: Int) -> [[Int]]? { nil }
    public func selfAttentionMapSource(site: AttentionSite, batch: Int) -> [Int]? { nil }
    public func wantsCrossAttentionProbs(site: AttentionSite) -> Bool { false }
    public func editCrossAttention(site: AttentionSite, probs: Tensor) throws {}
}
