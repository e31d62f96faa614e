import CDiffKernels

/// fp16 / bf16 -> f32 for the weight loaders. Uses the C kernels (threaded, vectorised) when they
/// pass a one-time self-check, else a portable Swift loop; unaligned sources use the Swift loop.
enum HalfConversion {
    /// True when de_f16_to_f32 / de_bf16_to_f32 convert a few known values correctly.
    static let cKernelsWork: Bool = {
        let h: [UInt16] = [0x3C00, 0xC000, 0x0001, 0x7BFF, 0x0000, 0x8000, 0x3555]
        let b: [UInt16] = [0x3F80, 0xC000, 0x4049, 0x0000]
        var fh = [Float](repeating: 7, count: h.count)
        var fb = [Float](repeating: 7, count: b.count)
        h.withUnsafeBufferPointer { s in fh.withUnsafeMutableBufferPointer { d in de_f16_to_f32(s.baseAddress, d.baseAddress, Int64(h.count)) } }
        b.withUnsafeBufferPointer { s in fb.withUnsafeMutableBufferPointer { d in de_bf16_to_f32(s.baseAddress, d.baseAddress, Int64(b.count)) } }
        for i in 0..<h.count where fh[i].bitPattern != swiftF16(h[i]).bitPattern { return false }
        for i in 0..<b.count where fb[i].bitPattern != swiftBF16(b[i]).bitPattern { return false }
        return true
    }()

    @inline(__always) static func swiftF16(_ x: UInt16) -> Float {
        let sign = UInt32(x & 0x8000) << 16
        let exp = UInt32(x >> 10) & 0x1F
        let man = UInt32(x & 0x3FF)
        if exp == 0 {
            if man == 0 { return Float(bitPattern: sign) }
            // subnormal: man * 2^-24
            let v = Float(man) * (1.0 / 16_777_216.0)
            return sign != 0 ? -v : v
        }
        if exp == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (man << 13)) }
        return Float(bitPattern: sign | ((exp + 112) << 23) | (man << 13))
    }

    @inline(__always) static func swiftBF16(_ x: UInt16) -> Float { Float(bitPattern: UInt32(x) << 16) }

    static func f16ToF32(_ src: UnsafeRawBufferPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        let base = src.baseAddress!
        if cKernelsWork && Int(bitPattern: base) % 2 == 0 {
            de_f16_to_f32(base.assumingMemoryBound(to: UInt16.self), dst, Int64(n))
            return
        }
        for i in 0..<n { dst[i] = swiftF16(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
    }

    static func bf16ToF32(_ src: UnsafeRawBufferPointer, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        let base = src.baseAddress!
        if cKernelsWork && Int(bitPattern: base) % 2 == 0 {
            de_bf16_to_f32(base.assumingMemoryBound(to: UInt16.self), dst, Int64(n))
            return
        }
        for i in 0..<n { dst[i] = swiftBF16(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
    }
}
