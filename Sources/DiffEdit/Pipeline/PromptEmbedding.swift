/// A prompt's conditioning: the hidden states the UNet's cross-attention reads ([1, L, D]) and, for SDXL, the
/// pooled text embedding add_embedding reads ([1, P]; nil for SD 1.x/2.x).
public struct PromptEmbedding {
    public var hidden: Tensor
    public var pooled: Tensor?
    public init(hidden: Tensor, pooled: Tensor?) { self.hidden = hidden; self.pooled = pooled }
}
