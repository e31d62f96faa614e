import CDiffKernels

/// transformers CLIPTextModel (SD 1.x CLIP ViT-L text tower; SD 2.x OpenCLIP text tower converted to
/// the same layout, with the loader's config already dropping the last layer). Returns
/// last_hidden_state after final_layer_norm, as the SD pipelines use it.
public final class CLIPTextModel {
    public let config: CLIPTextConfig
    public let backend: Backend
    /// What the loaded parameters hold in memory (WeightsDType at work).
    public let weightTally: WeightTally
    let tokenEmbedding: Tensor      // [vocab, D]
    let positionEmbedding: Tensor   // [maxPos, D]
    let layers: [CLIPEncoderLayer]
    let finalLayerNorm: LayerNormLayer
    /// Every parameter by its name in the weight source (what LoRA fusing changes).
    public let parameters = WeightRegistry()
    /// CLIPTextModelWithProjection (SDXL's text_encoder_2): text_projection [projection_dim, hidden], no bias.
    let textProjection: LinearLayer?

    /// Accepts names with the `text_model.` prefix (real checkpoints) or without it (transformers 5 saves).
    public init(config c: CLIPTextConfig, weights: WeightSource, backend: Backend, weightsDType: WeightsDType = .auto) throws {
        self.config = c
        self.backend = backend
        let origin = weights.origin
        guard c.hidden_size > 0, c.num_attention_heads > 0, c.hidden_size % c.num_attention_heads == 0 else {
            throw DiffEditError.model("\(origin): text encoder config: hidden_size \(c.hidden_size) does not split into \(c.num_attention_heads) heads")
        }
        guard c.vocab_size > 0, c.max_position_embeddings > 0, c.num_hidden_layers >= 0, c.intermediate_size > 0 else {
            throw DiffEditError.model("\(origin): text encoder config: vocab_size, max_position_embeddings and intermediate_size must be positive")
        }
        let act: de_unary_kind
        switch c.hidden_act {
        case "quick_gelu": act = DE_UNARY_QUICK_GELU
        case "gelu": act = DE_UNARY_GELU
        case "gelu_new", "gelu_pytorch_tanh": act = DE_UNARY_GELU_TANH
        default: throw DiffEditError.unsupported("\(origin): text encoder hidden_act \"\(c.hidden_act)\" is not supported")
        }
        let root = WeightScope(weights, backend: backend, registry: parameters, weightsDType: weightsDType)
        weightTally = root.tally
        let w = (!weights.contains("text_model.embeddings.token_embedding.weight")
                 && weights.contains("embeddings.token_embedding.weight")) ? root : root.sub("text_model")
        let d = c.hidden_size
        // host gather; an fp16 table stays fp16 in place (rows widened on lookup) unless weightsDType is f32
        tokenEmbedding = try w.hostTable("embeddings.token_embedding.weight", [c.vocab_size, d])
        positionEmbedding = try w("embeddings.position_embedding.weight", [c.max_position_embeddings, d], upload: false)
        layers = try (0..<c.num_hidden_layers).map { i in
            try CLIPEncoderLayer(w.sub("encoder.layers", i), config: c, activation: act)
        }
        finalLayerNorm = try LayerNormLayer(w.sub("final_layer_norm"), dim: d, eps: c.layer_norm_eps)
        textProjection = weights.contains("text_projection.weight")
            ? try LinearLayer(root.sub("text_projection"), inFeatures: d, outFeatures: c.projection_dim, bias: false) : nil
    }

    /// What SDXL takes from a text encoder (transformers' output_hidden_states=True):
    /// `penultimate` = hidden_states[-2], the output of the last-but-one layer (no final layer norm) [B, L, D];
    /// `pooled` = CLIPTextModelWithProjection's text_embeds: final_layer_norm(last hidden)[eos] @ text_projection^T
    /// [B, projection_dim] (nil without a projection). The eos position is transformers': the first eos_token_id
    /// in the row, or (legacy configs with eos_token_id 2) the largest id.
    public func encodeForSDXL(ids: [[Int32]]) throws -> (penultimate: Tensor, pooled: Tensor?) {
        guard config.num_hidden_layers >= 1 else {
            throw DiffEditError.model("text encoder: SDXL conditioning needs at least one layer (hidden_states[-2])")
        }
        var penultimate: Tensor? = nil
        let last = try encode(ids: ids, hook: { k, h in if k == self.config.num_hidden_layers - 1 { penultimate = h.copy() } })
        guard let proj = textProjection else { return (penultimate!, nil) }
        let (b, l, d) = (last.shape[0], last.shape[1], last.shape[2])
        let rows = Tensor(shape: [b, d])
        for (r, row) in ids.enumerated() {
            let eos: Int
            if config.eos_token_id == 2 {
                eos = row.indices.max { row[$0] < row[$1] } ?? 0                      // torch argmax: the first maximum
            } else {
                eos = row.firstIndex(of: Int32(config.eos_token_id)) ?? 0
            }
            let src = last.data + (r * l + eos) * d
            for j in 0..<d { rows.data[r * d + j] = src[j] }
        }
        let pooled = try proj(backend, rows)                                           // [B, P]
        return (penultimate!, pooled.copy())
    }

    /// ids [B][L] (L <= max_position_embeddings, usually 77) -> last_hidden_state [B, L, hidden_size].
    public func encode(ids: [[Int32]]) throws -> Tensor { try encode(ids: ids, hook: nil) }

    /// `hook(k, h)`: called with the hidden states before layer k (k = 0: the embeddings; k = n: after the last).
    func encode(ids: [[Int32]], hook: ((Int, Tensor) throws -> Void)?) throws -> Tensor {
        let c = config
        guard let l = ids.first?.count, l > 0 else {
            throw DiffEditError.invalidArgument("CLIPTextModel.encode: ids is empty")
        }
        guard ids.allSatisfy({ $0.count == l }) else {
            throw DiffEditError.invalidArgument("CLIPTextModel.encode: rows of ids have different lengths \(ids.map(\.count))")
        }
        guard l <= c.max_position_embeddings else {
            throw DiffEditError.invalidArgument("CLIPTextModel.encode: \(l) tokens exceed max_position_embeddings \(c.max_position_embeddings)")
        }
        for (r, row) in ids.enumerated() {
            if let bad = row.first(where: { $0 < 0 || Int($0) >= c.vocab_size }) {
                throw DiffEditError.invalidArgument("CLIPTextModel.encode: token id \(bad) in row \(r) is outside the vocabulary (0..<\(c.vocab_size))")
            }
        }
        let b = ids.count, d = c.hidden_size
        let h = Tensor(shape: [b, l, d], zeroed: false)                  // [B, L, D]
        for (r, row) in ids.enumerated() {
            for (t, id) in row.enumerated() {
                let dst = h.data + (r * l + t) * d
                tokenEmbedding.row(Int(id), into: dst)                   // the table's row, as f32
                let pos = positionEmbedding.data + t * d
                for j in 0..<d { dst[j] += pos[j] }
            }
        }
        // the weights read in place from the checkpoint leave the resident set once the prompts are encoded
        defer { weightTally.releaseMappedPages() }
        for (k, layer) in layers.enumerated() {
            try hook?(k, h)
            try layer.forward(backend, h)                                // [B, L, D]
        }
        return try finalLayerNorm(backend, h, inPlace: true)             // [B, L, D]
    }
}
