import FoundationEssentials

/// Path-string helpers with the semantics of the NSString path methods the library used before it
/// dropped full Foundation (which links ICU). Plain string work on "/"-separated POSIX paths.
package enum PathName {
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

    /// `(a as NSString).appendingPathComponent(b)`.
    package static func join(_ a: String, _ b: String) -> String {
        if a.isEmpty { return fixSlashes(b) }
        if b.isEmpty { return fixSlashes(a) }
        return fixSlashes(a + "/" + b)
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

    /// `(p as NSString).standardizingPath`: "~" expanded, "." and empty components dropped, ".." removes
    /// the component before it in absolute paths (kept at the start of a relative path).
    package static func standardizing(_ p: String, home: String? = nil) -> String {
        var s = p
        if s == "~" || s.hasPrefix("~/") {
            if let h = home ?? ProcessInfo.processInfo.environment["HOME"], !h.isEmpty { s = h + s.dropFirst() }
        }
        let absolute = s.hasPrefix("/")
        var parts: [Substring] = []
        for c in s.split(separator: "/", omittingEmptySubsequences: true) {
            if c == "." { continue }
            if c == ".." {
                if let l = parts.last, l != ".." { parts.removeLast(); continue }
                if absolute { continue }
            }
            parts.append(c)
        }
        let body = parts.joined(separator: "/")
        if absolute { return "/" + body }
        return body.isEmpty ? (s.isEmpty ? "" : ".") : body
    }
}
