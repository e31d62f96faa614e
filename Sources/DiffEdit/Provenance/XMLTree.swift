/// A small XML reader and writer for XMP packets: elements with attributes, text kept in its escaped form,
/// comments, processing instructions and CDATA kept verbatim, so a packet that is read and written back
/// keeps everything the editor does not touch. Not a validating parser: it checks that tags nest and close,
/// that attributes are quoted and not repeated, and that names are not empty; that is what tells a packet
/// that can be extended from a corrupt one.
public final class XMLElement {
    public var name: String
    /// (name, value as written, escaped)
    public var attributes: [(String, String)]
    public var children: [XMLTreeNode]

    public init(_ name: String, attributes: [(String, String)] = [], children: [XMLTreeNode] = []) {
        self.name = name; self.attributes = attributes; self.children = children
    }

    /// The name after the prefix ("rdf:Description" -> "Description").
    public var localName: Substring { name.split(separator: ":", maxSplits: 1).last ?? Substring(name) }
    public var prefix: Substring? { name.contains(":") ? name.split(separator: ":", maxSplits: 1).first : nil }

    public var elements: [XMLElement] { children.compactMap { if case .element(let e) = $0 { return e } else { return nil } } }

    public func attribute(_ n: String) -> String? { attributes.first { $0.0 == n }.map { XMLTree.unescape($0.1) } }

    /// The concatenated text of the direct children, unescaped.
    public var text: String {
        children.map { if case .text(let t) = $0 { return XMLTree.unescape(t) } else { return "" } }.joined()
    }

    /// The first descendant (depth first, self included) whose local name is `local`.
    public func first(local: String) -> XMLElement? {
        if localName == local { return self }
        for e in elements { if let f = e.first(local: local) { return f } }
        return nil
    }
}

public enum XMLTreeNode {
    case element(XMLElement)
    /// Character data, escaped as it appears in the file.
    case text(String)
    /// A comment, processing instruction or CDATA section, verbatim.
    case other(String)
}

/// A parsed document: what comes before the root element (declaration, xpacket PI, whitespace), the root,
/// and what follows it.
public struct XMLTree {
    public var prolog: [XMLTreeNode]
    public var root: XMLElement
    public var epilog: [XMLTreeNode]

    public struct ParseError: Error, CustomStringConvertible {
        public let description: String
    }

    public init(prolog: [XMLTreeNode] = [], root: XMLElement, epilog: [XMLTreeNode] = []) {
        self.prolog = prolog; self.root = root; self.epilog = epilog
    }

    public init(parsing text: String) throws {
        var p = Parser(Array(text.utf8))
        var prolog: [XMLTreeNode] = [], epilog: [XMLTreeNode] = []
        var root: XMLElement? = nil
        while !p.atEnd {
            if let misc = try p.misc() {
                if root == nil { prolog.append(misc) } else { epilog.append(misc) }
                continue
            }
            guard root == nil else { throw ParseError(description: "content after the root element at byte \(p.i)") }
            root = try p.element()
        }
        guard let r = root else { throw ParseError(description: "no root element") }
        self.init(prolog: prolog, root: r, epilog: epilog)
    }

    public func serialized() -> String {
        var out = ""
        for n in prolog { XMLTree.write(n, into: &out) }
        XMLTree.write(.element(root), into: &out)
        for n in epilog { XMLTree.write(n, into: &out) }
        return out
    }

    static func write(_ n: XMLTreeNode, into out: inout String) {
        switch n {
        case .text(let t), .other(let t): out += t
        case .element(let e):
            out += "<" + e.name
            for (k, v) in e.attributes { out += " \(k)=\"\(v)\"" }
            if e.children.isEmpty { out += "/>"; return }
            out += ">"
            for c in e.children { write(c, into: &out) }
            out += "</\(e.name)>"
        }
    }

    public static func escape(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "\t", "\n", "\r": out += "&#\(c.value);"
            case let x where x.value < 0x20: out += " "          // not representable in XML 1.0
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    public static func unescape(_ s: String) -> String {
        guard s.contains("&") else { return s }
        var out = "", i = s.startIndex
        while i < s.endIndex {
            if s[i] == "&", let semi = s[i...].firstIndex(of: ";") {
                let ent = s[s.index(after: i)..<semi]
                var rep: String? = nil
                switch ent {
                case "amp": rep = "&"
                case "lt": rep = "<"
                case "gt": rep = ">"
                case "quot": rep = "\""
                case "apos": rep = "'"
                default:
                    if ent.hasPrefix("#x"), let v = UInt32(ent.dropFirst(2), radix: 16), let u = Unicode.Scalar(v) { rep = String(u) }
                    else if ent.hasPrefix("#"), let v = UInt32(ent.dropFirst()), let u = Unicode.Scalar(v) { rep = String(u) }
                }
                if let r = rep { out += r; i = s.index(after: semi); continue }
            }
            out.append(s[i]); i = s.index(after: i)
        }
        return out
    }

    /// Byte-level recursive descent over UTF-8.
    struct Parser {
        let b: [UInt8]
        var i = 0
        var depth = 0
        init(_ b: [UInt8]) { self.b = b }
        var atEnd: Bool { i >= b.count }

        func fail(_ what: String) -> ParseError { ParseError(description: "\(what) at byte \(i)") }

        func starts(_ s: String) -> Bool {
            let u = Array(s.utf8)
            return i + u.count <= b.count && Array(b[i..<(i + u.count)]) == u
        }

        mutating func until(_ end: String) throws -> String {
            let u = Array(end.utf8), start = i
            while i + u.count <= b.count {
                if Array(b[i..<(i + u.count)]) == u { i += u.count; return String(decoding: b[start..<i], as: UTF8.self) }
                i += 1
            }
            throw fail("unterminated \(String(decoding: b[start..<min(b.count, start + 4)], as: UTF8.self))")
        }

        /// Whitespace, comment, PI or doctype outside the root; nil at the start of an element.
        mutating func misc() throws -> XMLTreeNode? {
            if starts("<?") { return .other(try until("?>")) }
            if starts("<!--") { return .other(try until("-->")) }
            if starts("<!DOCTYPE") { return .other(try until(">")) }
            if starts("<") { return nil }
            let start = i
            while i < b.count && b[i] != UInt8(ascii: "<") { i += 1 }
            let t = String(decoding: b[start..<i], as: UTF8.self)
            guard t.unicodeScalars.allSatisfy({ $0 == " " || $0 == "\n" || $0 == "\r" || $0 == "\t" || $0 == "\u{FEFF}" }) else {
                throw ParseError(description: "text outside the root element at byte \(start)")
            }
            return .text(t)
        }

        static func isNameByte(_ c: UInt8) -> Bool {
            !(c == UInt8(ascii: " ") || c == UInt8(ascii: "\n") || c == UInt8(ascii: "\r") || c == UInt8(ascii: "\t")
              || c == UInt8(ascii: "/") || c == UInt8(ascii: ">") || c == UInt8(ascii: "=") || c == UInt8(ascii: "<")
              || c == UInt8(ascii: "\"") || c == UInt8(ascii: "'"))
        }

        mutating func name() throws -> String {
            let start = i
            while i < b.count && Parser.isNameByte(b[i]) { i += 1 }
            guard i > start else { throw fail("expected a name") }
            return String(decoding: b[start..<i], as: UTF8.self)
        }

        mutating func space() {
            while i < b.count && (b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09) { i += 1 }
        }

        mutating func element() throws -> XMLElement {
            depth += 1
            defer { depth -= 1 }
            guard depth < 256 else { throw fail("elements nested too deeply") }
            guard starts("<") else { throw fail("expected '<'") }
            i += 1
            let e = XMLElement(try name())
            while true {
                space()
                guard i < b.count else { throw fail("unterminated tag <\(e.name)") }
                if starts("/>") { i += 2; return e }
                if b[i] == UInt8(ascii: ">") { i += 1; break }
                let an = try name()
                space()
                guard i < b.count, b[i] == UInt8(ascii: "=") else { throw fail("attribute \(an) of <\(e.name)> has no value") }
                i += 1; space()
                guard i < b.count, b[i] == UInt8(ascii: "\"") || b[i] == UInt8(ascii: "'") else {
                    throw fail("attribute \(an) of <\(e.name)> is not quoted")
                }
                let q = b[i]; i += 1
                let start = i
                while i < b.count && b[i] != q {
                    if b[i] == UInt8(ascii: "<") { throw fail("'<' in attribute \(an)") }
                    i += 1
                }
                guard i < b.count else { throw fail("unterminated attribute \(an)") }
                var v = String(decoding: b[start..<i], as: UTF8.self)
                if q == UInt8(ascii: "'") { v = v.replacing("\"", with: "&quot;") }
                i += 1
                guard !e.attributes.contains(where: { $0.0 == an }) else { throw fail("attribute \(an) repeated in <\(e.name)>") }
                e.attributes.append((an, v))
            }
            // content
            while true {
                guard i < b.count else { throw fail("<\(e.name)> is not closed") }
                if starts("</") {
                    i += 2
                    let n = try name()
                    guard n == e.name else { throw fail("</\(n)> closes <\(e.name)>") }
                    space()
                    guard i < b.count, b[i] == UInt8(ascii: ">") else { throw fail("unterminated </\(n)") }
                    i += 1
                    return e
                }
                if starts("<!--") { e.children.append(.other(try until("-->"))); continue }
                if starts("<![CDATA[") { e.children.append(.other(try until("]]>"))); continue }
                if starts("<?") { e.children.append(.other(try until("?>"))); continue }
                if starts("<") { e.children.append(.element(try element())); continue }
                let start = i
                while i < b.count && b[i] != UInt8(ascii: "<") { i += 1 }
                e.children.append(.text(String(decoding: b[start..<i], as: UTF8.self)))
            }
        }
    }
}
