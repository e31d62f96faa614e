/// Non-finite values (NaN, ±Inf) where they can only come from a broken file: in loaded weights (checked once,
/// as each tensor is read: `SafetensorsFile`) and in the VAE's decoded output (`AutoencoderKL.decode`). Such a
/// model used to give an all-black image with DIFF_EDIT_OK; now it is `.model` naming the tensor (issue 21).
/// The scan is one pass of integer compares over the floats (vectorised), about a memory read of the weights.
public enum NumericHealth {
    /// Whether any of p[0..<n] is NaN or infinite (exponent bits all ones).
    public static func hasNonFinite(_ p: UnsafePointer<Float>, _ n: Int) -> Bool {
        guard n > 0 else { return false }
        let bits = UnsafeRawPointer(p).assumingMemoryBound(to: UInt32.self)
        var i = 0
        while i < n {
            let end = min(i + 65536, n)
            var bad: UInt32 = 0
            for j in i..<end { bad |= ((bits[j] & 0x7F80_0000) == 0x7F80_0000) ? 1 : 0 }
            if bad != 0 { return true }
            i = end
        }
        return false
    }

    /// The NaN and infinity counts and the first bad index of p[0..<n] (for the message; only called on failure).
    static func census(_ p: UnsafePointer<Float>, _ n: Int) -> (nan: Int, inf: Int, first: Int) {
        var nan = 0, inf = 0, first = -1
        for j in 0..<n where !p[j].isFinite {
            if p[j].isNaN { nan += 1 } else { inf += 1 }
            if first < 0 { first = j }
        }
        return (nan, inf, first)
    }

    /// Throws `.model("WHAT: N NaN and M infinite values (first at element K of SHAPE)...")` when p has any.
    public static func requireFinite(_ p: UnsafePointer<Float>, _ n: Int, shape: [Int], _ what: String,
                                     hint: String = "the file is corrupt or was saved after training diverged") throws {
        guard hasNonFinite(p, n) else { return }
        let c = census(p, n)
        throw DiffEditError.model("\(what): \(c.nan) NaN and \(c.inf) infinite values (first at element \(c.first) of shape \(shape)); \(hint)")
    }
}
