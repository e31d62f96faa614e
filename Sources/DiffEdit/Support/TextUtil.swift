#if canImport(Glibc)
import Glibc
#endif

/// String helpers that replace the Foundation (NSString/CharacterSet/String(format:)) ones, so that the
/// library links only FoundationEssentials (no ICU). Same results as the Foundation calls they replace.
package enum TextUtil {
    /// CharacterSet.whitespaces: Unicode general category Zs plus tab.
    package static func isWhitespace(_ u: Unicode.Scalar) -> Bool {
        u == "\t" || u.properties.generalCategory == .spaceSeparator
    }

    /// CharacterSet.whitespacesAndNewlines: the above plus U+000A...U+000D, U+0085, U+2028, U+2029.
    package static func isWhitespaceOrNewline(_ u: Unicode.Scalar) -> Bool {
        if isWhitespace(u) { return true }
        switch u.value {
        case 0x0A...0x0D, 0x85, 0x2028, 0x2029: return true
        default: return false
        }
    }

    static func trim<S: StringProtocol>(_ s: S, _ drop: (Unicode.Scalar) -> Bool) -> String {
        let scalars = s.unicodeScalars
        guard let first = scalars.firstIndex(where: { !drop($0) }) else { return "" }
        let last = scalars.lastIndex(where: { !drop($0) })!
        return String(String.UnicodeScalarView(scalars[first...last]))
    }

    /// `s.trimmingCharacters(in: .whitespaces)`.
    package static func trimmingWhitespace<S: StringProtocol>(_ s: S) -> String { trim(s, isWhitespace) }

    /// `s.trimmingCharacters(in: .whitespacesAndNewlines)`.
    package static func trimmingWhitespaceAndNewlines<S: StringProtocol>(_ s: S) -> String {
        trim(s, isWhitespaceOrNewline)
    }

    /// `s.range(of: needle, options: .literal)`: the first occurrence comparing Unicode scalars.
    package static func literalRange<S: StringProtocol>(of needle: String, in s: S) -> Range<String.Index>? {
        let hay = s.unicodeScalars, pat = Array(needle.unicodeScalars)
        guard let p0 = pat.first else { return nil }
        var i = hay.startIndex
        while i != hay.endIndex {
            if hay[i] == p0 {
                var j = i, k = 0
                while k < pat.count, j != hay.endIndex, hay[j] == pat[k] { j = hay.index(after: j); k += 1 }
                if k == pat.count { return i..<j }
            }
            i = hay.index(after: i)
        }
        return nil
    }

    /// `s.precomposedStringWithCanonicalMapping` (Unicode NFC) via the standard library's normaliser.
    package static func nfc(_ s: String) -> String {
        String(decoding: s._nfcCodeUnits, as: UTF8.self)
    }

    /// `String(format:)` for numeric C formats (%d, %ld, %f, %.3f, %e, %g, %x, %%): vsnprintf in the C
    /// locale, as Foundation formats. No %@ (interpolate strings instead).
    package static func format(_ fmt: String, _ args: CVarArg...) -> String {
        withVaList(args) { va -> String in
            var buf = [CChar](repeating: 0, count: 256)
            let n = buf.withUnsafeMutableBufferPointer { vsnprintf($0.baseAddress, 256, fmt, va) }
            if n < 0 { return "" }
            if Int(n) < buf.count { return String(cString: buf) }
            return withVaList(args) { va2 -> String in
                var big = [CChar](repeating: 0, count: Int(n) + 1)
                _ = big.withUnsafeMutableBufferPointer { vsnprintf($0.baseAddress, Int(n) + 1, fmt, va2) }
                return String(cString: big)
            }
        }
    }

    /// `s.padding(toLength: n, withPad: " ", startingAt: 0)`: cut or space-padded to n characters
    /// (UTF-16 units as NSString counts them).
    package static func padded(_ s: String, to n: Int) -> String {
        let u = Array(s.utf16)
        if u.count >= n { return String(decoding: u[0..<n], as: UTF16.self) }
        return s + String(repeating: " ", count: n - u.count)
    }
}
