import CDiffKernels

/// The editing methods' latent arithmetic as backend ops: on a resident backend (CUDA, or the CPU provider
/// in staged mode) none of it brings a tensor back to the host. Latents are NCHW, masks [h * w] planes.
enum LatentOps {
    /// x <- source + m (x - source), in place; m [h * w] (in backend memory: `plane`) broadcast over
    /// channels and items; source has x's shape or one item of it (then broadcast over x's items).
    static func blend(_ be: Backend, _ x: Tensor, source: Tensor, mask m: Tensor) throws {
        let plane = x.shape[2] * x.shape[3]
        precondition(m.count == plane && x.count % source.count == 0, "LatentOps.blend: \(x.shape) \(source.shape) mask \(m.count)")
        let per = source.count
        for k in 0..<(x.count / per) {
            let xi = Tensor(shape: source.shape, storage: x.storage, offset: x.offset + k * per)
            let d = try be.lincomb([(1, xi), (-1, source)])                          // x - s
            _ = try be.binary(DE_BINARY_MUL, d, m, inPlace: true)                    // m (x - s)
            _ = try be.lincomb([(1, source), (1, d)], into: xi)                      // s + m (x - s)
        }
    }

    /// Direct inversion (Ju et al., ICLR 2024): lat [2, C, h, w] = (source, target); the source is set to
    /// `ref` [1, C, h, w] and the target moves by the same correction.
    static func pinSource(_ be: Backend, _ lat: Tensor, to ref: Tensor) throws {
        precondition(lat.count == 2 * ref.count, "pinSource: \(lat.shape) vs \(ref.shape)")
        let src = lat.slice0(0, 1), tgt = lat.slice0(1, 1)
        let d = try be.lincomb([(1, ref), (-1, src)])                                // ref - source
        try be.copyStrided(shape: [ref.count], from: ref, fromStrides: [1], to: src, toStrides: [1])
        _ = try be.lincomb([(1, tgt), (1, d)], into: tgt)
    }

    /// A host plane (mask) in backend memory, uploaded once.
    static func plane(_ be: Backend, _ values: [Float], height: Int, width: Int) throws -> Tensor {
        try be.onDevice(Tensor(shape: [1, 1, height, width], values: values))
    }

    /// `n` copies of x along dimension 0, in backend memory.
    static func repeat0(_ be: Backend, _ x: Tensor, _ n: Int) throws -> Tensor {
        let y = try be.output([n * x.shape[0]] + Array(x.shape.dropFirst()))
        try be.copyStrided(shape: [n, x.count], from: x, fromStrides: [0, 1], to: y, toStrides: [x.count, 1])
        return y
    }

    /// The UNet batch of a step: item k of slot s is branch itemBranch[k] of slot s in lat [S * B, ...].
    static func gather(_ be: Backend, _ lat: Tensor, slots: Int, layout: BatchLayout) throws -> Tensor {
        if layout.items == layout.branches && layout.itemBranch == Array(0..<layout.branches) { return lat }
        let item = lat.count / lat.shape[0]
        let y = try be.output([slots * layout.items] + Array(lat.shape.dropFirst()))
        for (k, b) in layout.itemBranch.enumerated() {
            try be.copyStrided(shape: [slots, item], from: lat, fromOffset: b * item, fromStrides: [layout.branches * item, 1],
                               to: y, toOffset: k * item, toStrides: [layout.items * item, 1])
        }
        return y
    }

    /// Items `items` (of `g` per slot) of every slot of x [S * g, ...] -> [S * K, ...] (x itself when all, in order).
    static func gatherItems(_ be: Backend, _ x: Tensor, slots: Int, items: [Int], of g: Int) throws -> Tensor {
        if items == Array(0..<g) { return x }
        let item = x.count / x.shape[0], k = items.count
        let y = try be.output([slots * k] + Array(x.shape.dropFirst()))
        for (j, i) in items.enumerated() {
            try be.copyStrided(shape: [slots, item], from: x, fromOffset: i * item, fromStrides: [g * item, 1],
                               to: y, toOffset: j * item, toStrides: [k * item, 1])
        }
        return y
    }

    /// Branch `b` of every slot of lat [S * B, ...] -> [S, ...] (a copy).
    static func branch(_ be: Backend, _ lat: Tensor, _ b: Int, of branches: Int) throws -> Tensor {
        if branches == 1 { return lat }
        let slots = lat.shape[0] / branches, item = lat.count / lat.shape[0]
        let y = try be.output([slots] + Array(lat.shape.dropFirst()))
        try be.copyStrided(shape: [slots, item], from: lat, fromOffset: b * item, fromStrides: [branches * item, 1],
                           to: y, toStrides: [item, 1])
        return y
    }

    /// Sets branch `b` of every slot of lat [S * B, ...] from x [S, ...].
    static func setBranch(_ be: Backend, _ lat: Tensor, _ b: Int, of branches: Int, from x: Tensor) throws {
        let slots = lat.shape[0] / branches, item = lat.count / lat.shape[0]
        try be.copyStrided(shape: [slots, item], from: x, fromStrides: [item, 1],
                           to: lat, toOffset: b * item, toStrides: [branches * item, 1])
    }
}
