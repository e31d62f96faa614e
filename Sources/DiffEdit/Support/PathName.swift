import FoundationEssentials

/// Path-string helpers with the semantics of the NSString path methods the library used before it
/// dropped full Foundation (which links ICU). Plain string work on "/"-separated POSIX paths.
package enum PathName {
    /// A path's bytes for a message: valid UTF-8 as it is, every byte of an invalid sequence (and a
    /// control character) as \xHH, a backslash doubled. POSIX paths are bytes; this shows any of them.
    package static func escaped(_ bytes: [UInt8]) -> String {
        var out = ""
        var i = 0
        func hex(_ b: UInt8) -> String {
            let d = Array("0123456789ABCDEF")
            return "\\x" + String(d[Int(b >> 4)]) + String(d[Int(b & 15)])
        }
        while i < bytes.count {
            let b = bytes[i]
            let n = b < 0x80 ? 1 : b >= 0xC2 && b <= 0xDF ? 2 : b >= 0xE0 && b <= 0xEF ? 3 : b >= 0xF0 && b <= 0xF4 ? 4 : 0
            if n == 1 {
                if b < 0x20 || b == 0x7F { out += hex(b) } else if b == UInt8(ascii: "\\") { out += "\\\\" } else { out.append(Character(Unicode.Scalar(b))) }
                i += 1
            } else if n > 1, i + n <= bytes.count, let s = String(validating: bytes[i..<(i + n)], as: UTF8.self) {
                out += s
                i += n
            } else {
                out += hex(b)
                i += 1
            }
        }
        return out
    }

    /// Removes repeated slashes and a trailing slash (except for "/" itself).
    static func fixSlashes(_ p: String) -> String {
        guard p.contains("/") else { return p }
        var out = ""
        out.reserveCapacity(p.utf8.count)
        var lastSlash = false
        for ch in p {
            if ch == "/" {
                if lastSlash { continue }
                lastSlash = true
            } else {
                lastSlash = false
            }
            out.append(ch)
        }
        if out.count > 1 && out.hasSuffix("/") { out.removeLast() }
        return out
    }

    /// `(a as NSString).appendingPathComponent(b)` (swift-corelibs-foundation: plain concatenation with
    /// one "/" between, the parts otherwise unchanged).
    package static func join(_ a: String, _ b: String) -> String {
        if b.isEmpty { return a }
        if a.isEmpty { return b }
        return a.hasSuffix("/") ? a + b : a + "/" + b
    }

    /// `(p as NSString).deletingLastPathComponent`: "/a/b" -> "/a", "/a" -> "/", "a" -> "", "/" -> "/".
    package static func deletingLastComponent(_ p: String) -> String {
        let s = fixSlashes(p)
        if s == "/" || s.isEmpty { return s }
        guard let i = s.lastIndex(of: "/") else { return "" }
        if i == s.startIndex { return "/" }
        return String(s[s.startIndex..<i])
    }

    /// `(p as NSString).lastPathComponent`.
    package static func lastComponent(_ p: String) -> String {
        let s = fixSlashes(p)
        if s == "/" { return s }
        guard let i = s.lastIndex(of: "/") else { return s }
        return String(s[s.index(after: i)...])
    }

    /// `(p as NSString).pathExtension`: the text after the last "." of the last component, "" when
    /// there is none or the component is only an extension (".hidden").
    package static func pathExtension(_ p: String) -> String {
        let last = lastComponent(p)
        guard let dot = last.lastIndex(of: "."), dot != last.startIndex else { return "" }
        return String(last[last.index(after: dot)...])
    }

    /// `(p as NSString).standardizingPath` as swift-corelibs-foundation does it: "~" expanded; in an
    /// absolute path "." dropped and ".." removing the component before it; in a relative path only
    /// inner "." components dropped (".." and a leading "." kept); repeated and trailing slashes removed.
    package static func standardizing(_ p: String, home: String? = nil) -> String {
        var s = p
        if s == "~" || s.hasPrefix("~/") {
            if let h = home ?? ProcessInfo.processInfo.environment["HOME"], !h.isEmpty { s = h + s.dropFirst() }
        }
        let absolute = s.hasPrefix("/")
        var parts: [Substring] = []
        for (n, c) in s.split(separator: "/", omittingEmptySubsequences: true).enumerated() {
            if c == "." && (absolute || n > 0) { continue }
            if c == ".." && absolute {
                if !parts.isEmpty { parts.removeLast() }
                continue
            }
            parts.append(c)
        }
        let body = parts.joined(separator: "/")
        return absolute ? "/" + body : body
    }
}
