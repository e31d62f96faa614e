import CDiffKernels

/// diffusers Attention as used by BasicTransformerBlock: to_q/to_k/to_v without bias, to_out.0 with
/// bias, scale 1/sqrt(head_dim). attn1 is self-attention, attn2 cross-attention over the text.
/// The output projection is accumulated into the residual stream (GEMM with beta = 1).
/// An `AttentionController` can redirect self-attention keys/maps and edit cross-attention maps.
final class UNetAttention {
    let name: String
    let place: String
    let isCross: Bool
    let heads: Int
    let headDim: Int
    let toQ: LinearLayer
    let toK: LinearLayer
    let toV: LinearLayer
    let toOut: LinearLayer
    var inner: Int { heads * headDim }
    var scale: Float { 1 / Float(headDim).squareRoot() }

    init(_ w: WeightScope, name: String, place: String, isCross: Bool, dim: Int, contextDim: Int,
         heads: Int, headDim: Int) throws {
        self.name = name; self.place = place; self.isCross = isCross
        self.heads = heads; self.headDim = headDim
        let inner = heads * headDim
        let kvDim = isCross ? contextDim : dim
        toQ = try LinearLayer(w.sub("to_q"), inFeatures: dim, outFeatures: inner, bias: false)
        toK = try LinearLayer(w.sub("to_k"), inFeatures: kvDim, outFeatures: inner, bias: false)
        toV = try LinearLayer(w.sub("to_v"), inFeatures: kvDim, outFeatures: inner, bias: false)
        toOut = try LinearLayer(w.sub("to_out.0"), inFeatures: inner, outFeatures: dim)
    }

    /// hidden [B, L, dim] += to_out(attention(norm [B, L, dim], context [B, Lc, contextDim]))
    func forward(_ be: Backend, normed x: Tensor, context: Tensor?, residual hidden: Tensor,
                 height: Int, width: Int, controller: AttentionController?) throws {
        let b = x.shape[0]
        let kvIn = isCross ? context! : x
        let q = try toQ(be, x)                       // [B, Lq, inner]
        let k = try toK(be, kvIn)                    // [B, Lk, inner]
        let v = try toV(be, kvIn)                    // [B, Lk, inner]
        var o: Tensor? = nil                         // [B, Lq, inner]
        if let c = controller {
            let site = AttentionSite(name: name, isCross: isCross, place: place, heads: heads, height: height, width: width)
            if isCross {
                if c.wantsCrossAttentionProbs(site: site) {
                    o = try crossWithProbs(be, q: q, k: k, v: v, site: site, controller: c)
                }
            } else {
                let keySources = c.selfAttentionKeySources(site: site, batch: b)
                let mapSource = c.selfAttentionMapSource(site: site, batch: b)
                if keySources != nil || mapSource != nil {
                    o = try redirectedSelf(be, q: q, k: k, v: v, keySources: keySources, mapSource: mapSource)
                }
            }
        }
        let out = try o ?? be.attention(q: q, k: k, v: v, heads: heads, scale: scale)   // [B, Lq, inner]
        try toOut.accumulate(be, out, into: hidden)   // hidden [B, Lq, dim] += o @ W^T + b
    }

    /// A descriptor for items of [*, L, inner] projections; pointers set by the caller.
    private func op(qLen: Int, kvLen: Int, batch: Int) -> de_attention_op {
        var op = de_attention_op()
        op.dtype = DE_F32
        op.batch = Int32(batch); op.heads = Int32(heads); op.q_len = Int32(qLen); op.kv_len = Int32(kvLen)
        op.head_dim = Int32(headDim); op.scale = scale
        op.q_sb = Int64(qLen * inner); op.q_sh = Int64(headDim); op.q_st = Int64(inner)
        op.k_sb = Int64(kvLen * inner); op.k_sh = Int64(headDim); op.k_st = Int64(inner)
        op.v_sb = Int64(kvLen * inner); op.v_sh = Int64(headDim); op.v_st = Int64(inner)
        op.o_sb = Int64(qLen * inner); op.o_sh = Int64(headDim); op.o_st = Int64(inner)
        return op
    }

    /// Self-attention where item i uses the queries/keys of item map[i] (P2P injection) and the
    /// keys/values of several items concatenated along tokens (cross-frame attention). Combined:
    /// with j = map[i], o_i = softmax(Q_j [K of keySources[j]]^T * scale) [V of keySources[i]]
    /// (item i takes item j's whole attention map, applied to its own value sources; both lists
    /// must have the same length).
    private func redirectedSelf(_ be: Backend, q: Tensor, k: Tensor, v: Tensor,
                                keySources: [[Int]]?, mapSource: [Int]?) throws -> Tensor {
        let b = q.shape[0], l = q.shape[1], item = l * inner
        func bad(_ what: String) -> DiffEditError {
            DiffEditError.invalidArgument("attention controller at \(name): \(what) (batch \(b))")
        }
        let o = try be.output(q.shape)                  // [B, L, inner]
        if let ks = keySources {
            guard ks.count == b else { throw bad("selfAttentionKeySources has \(ks.count) entries") }
            for list in ks where list.isEmpty || list.contains(where: { $0 < 0 || $0 >= b }) {
                throw bad("selfAttentionKeySources entry \(list) is empty or out of range")
            }
        }
        if let ms = mapSource {
            guard ms.count == b else { throw bad("selfAttentionMapSource has \(ms.count) entries") }
            guard ms.allSatisfy({ $0 >= 0 && $0 < b }) else { throw bad("selfAttentionMapSource \(ms) out of range") }
        }
        for i in 0..<b {
            let qi = mapSource?[i] ?? i
            let kItems = keySources?[qi] ?? [qi]
            let vItems = keySources?[i] ?? [i]
            guard kItems.count == vItems.count else {
                throw bad("item \(i) takes its map from item \(qi) with \(kItems.count) key sources but has \(vItems.count) value sources")
            }
            let n = kItems.count
            var desc = op(qLen: l, kvLen: n * l, batch: 1)
            desc.o = UnsafeMutableRawPointer(o.opData + i * item)
            desc.q = UnsafeRawPointer(q.opData + qi * item)
            if n == 1 {
                desc.k = UnsafeRawPointer(k.opData + kItems[0] * item)
                desc.v = UnsafeRawPointer(v.opData + vItems[0] * item)
                try be.attention(&desc)
            } else {
                let kc = try be.output([n * l, inner])   // [n*L, inner]
                let vc = try be.output([n * l, inner])   // [n*L, inner]
                for (j, src) in kItems.enumerated() {
                    try be.copyStrided(shape: [item], from: k, fromOffset: src * item, fromStrides: [1], to: kc, toOffset: j * item, toStrides: [1])
                }
                for (j, src) in vItems.enumerated() {
                    try be.copyStrided(shape: [item], from: v, fromOffset: src * item, fromStrides: [1], to: vc, toOffset: j * item, toStrides: [1])
                }
                desc.k = UnsafeRawPointer(kc.opData)
                desc.v = UnsafeRawPointer(vc.opData)
                try withExtendedLifetime((kc, vc)) { try be.attention(&desc) }
            }
        }
        return o
    }

    /// Cross-attention with materialised probabilities [B, heads, Lq, Lk] handed to the controller.
    private func crossWithProbs(_ be: Backend, q: Tensor, k: Tensor, v: Tensor,
                                site: AttentionSite, controller: AttentionController) throws -> Tensor {
        let b = q.shape[0], lq = q.shape[1], lk = k.shape[1], d = headDim
        let o = try be.output(q.shape)                                     // [B, Lq, inner]
        let probs = try be.output([b, heads, lq, lk])                      // [B, H, Lq, Lk]
        for i in 0..<b {
            // scores[h] = Q[i, :, h] @ K[i, :, h]^T
            try be.gemm(batch: heads, m: lq, n: lk, k: d,
                        a: q.opData + i * lq * inner, lda: inner, strideA: d,
                        b: k.opData + i * lk * inner, ldb: inner, strideB: d, transB: true,
                        c: probs.opData + i * heads * lq * lk, ldc: lk, strideC: lq * lk)
        }
        _ = try be.softmax(probs, scale: scale, inPlace: true)              // [B, H, Lq, Lk]
        try controller.editCrossAttention(site: site, probs: probs)
        for i in 0..<b {
            for h in 0..<heads {   // O[i, :, h] = P[i, h] @ V[i, :, h] (per head: outputs interleave along rows)
                try be.gemm(m: lq, n: d, k: lk, a: probs.opData + (i * heads + h) * lq * lk, lda: lk,
                            b: v.opData + i * lk * inner + h * d, ldb: inner,
                            c: o.opData + i * lq * inner + h * d, ldc: inner)
            }
        }
        return o
    }
}
