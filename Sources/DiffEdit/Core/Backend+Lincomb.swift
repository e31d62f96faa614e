import CDiffKernels

extension Backend {
    /// y = sum c_j * x_j (1...4 terms, same element count), a new tensor (backend memory on a resident backend), or written into `into` (may alias a term).
    ///
    /// Evaluated left to right per element, ((c0*x0 + c1*x1) + c2*x2) + c3*x3, by the backend's lincomb op
    /// (de_backend.h), so scheduler updates, guidance and latent arithmetic stay in backend memory.
    /// The new tensor has the shape of the first term.
    public func lincomb(_ terms: [(Float, Tensor)], into y: Tensor? = nil) throws -> Tensor {
        precondition((1...4).contains(terms.count), "lincomb: \(terms.count) terms (1...4)")
        let n = terms[0].1.count
        precondition(terms.allSatisfy { $0.1.count == n }, "lincomb: element counts differ: \(terms.map { $0.1.shape })")
        if let y { precondition(y.count == n, "lincomb: into \(y.shape) vs terms \(terms[0].1.shape)") }
        let out = try y ?? output(terms[0].1.shape)
        var op = de_lincomb_op()
        op.dtype = DE_F32
        op.n = Int64(n)
        op.terms = Int32(terms.count)
        func c(_ j: Int) -> Float { j < terms.count ? terms[j].0 : 0 }
        func x(_ j: Int) -> UnsafeRawPointer? { j < terms.count ? UnsafeRawPointer(terms[j].1.opData) : nil }
        op.c = (c(0), c(1), c(2), c(3))
        op.x = (x(0), x(1), x(2), x(3))
        op.y = UnsafeMutableRawPointer(out.opData)
        try withExtendedLifetime(terms) {
            try check(de_lincomb(raw, &op), "lincomb")
        }
        return out
    }
}
