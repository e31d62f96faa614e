/// A small JSON reader/writer over untyped values, replacing Foundation's JSONSerialization (which is
/// not in FoundationEssentials). Objects -> [String: Any], arrays -> [Any], strings -> String,
/// true/false -> Bool, numbers -> Int when written as an integer that fits, else Double, null -> JSONNull.
package enum JSONAny {
    package struct ParseError: Error, CustomStringConvertible {
        package let offset: Int
        package let reason: String
        package var description: String { "invalid JSON at byte \(offset): \(reason)" }
    }

    /// Parses one JSON value (surrounded by optional whitespace).
    package static func parse<C: Collection>(_ bytes: C) throws -> Any where C.Element == UInt8 {
        let arr = Array(bytes)
        return try arr.withUnsafeBufferPointer { buf -> Any in
            var p = Parser(b: buf, i: 0)
            p.skipSpace()
            let v = try p.value(depth: 0)
            p.skipSpace()
            guard p.i == buf.count else { throw ParseError(offset: p.i, reason: "garbage after the value") }
            return v
        }
    }

    struct Parser {
        let b: UnsafeBufferPointer<UInt8>
        var i: Int
        static let maxDepth = 512

        func fail(_ r: String) -> ParseError { ParseError(offset: i, reason: r) }

        mutating func skipSpace() {
            while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
        }

        mutating func literal(_ s: String) throws {
            for c in s.utf8 {
                guard i < b.count, b[i] == c else { throw fail("expected \(s)") }
                i += 1
            }
        }

        mutating func value(depth: Int) throws -> Any {
            guard depth < Parser.maxDepth else { throw fail("nested too deeply") }
            guard i < b.count else { throw fail("unexpected end of input") }
            switch b[i] {
            case UInt8(ascii: "{"):
                i += 1
                var obj: [String: Any] = [:]
                skipSpace()
                if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return obj }
                while true {
                    skipSpace()
                    // a trailing comma before '}' is accepted, as Foundation's JSONSerialization does
                    if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return obj }
                    guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                    let k = try string()
                    skipSpace()
                    guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                    i += 1
                    skipSpace()
                    obj[k] = try value(depth: depth + 1)
                    skipSpace()
                    guard i < b.count else { throw fail("unterminated object") }
                    if b[i] == UInt8(ascii: ",") { i += 1; continue }
                    if b[i] == UInt8(ascii: "}") { i += 1; return obj }
                    throw fail("expected ',' or '}'")
                }
            case UInt8(ascii: "["):
                i += 1
                var arr: [Any] = []
                skipSpace()
                if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return arr }
                while true {
                    skipSpace()
                    if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return arr }   // trailing comma, as Foundation
                    arr.append(try value(depth: depth + 1))
                    skipSpace()
                    guard i < b.count else { throw fail("unterminated array") }
                    if b[i] == UInt8(ascii: ",") { i += 1; continue }
                    if b[i] == UInt8(ascii: "]") { i += 1; return arr }
                    throw fail("expected ',' or ']'")
                }
            case UInt8(ascii: "\""):
                return try string()
            case UInt8(ascii: "t"): try literal("true"); return true
            case UInt8(ascii: "f"): try literal("false"); return false
            case UInt8(ascii: "n"): try literal("null"); return JSONNull()
            default:
                return try number()
            }
        }

        mutating func digits() -> Int {
            let s = i
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 { i += 1 }
            return i - s
        }

        mutating func number() throws -> Any {
            let start = i
            if i < b.count, b[i] == UInt8(ascii: "-") { i += 1 }
            guard i < b.count, b[i] >= 0x30, b[i] <= 0x39 else { throw fail("unexpected character") }
            if b[i] == 0x30 { i += 1 } else { _ = digits() }
            var integral = true
            if i < b.count, b[i] == UInt8(ascii: ".") {
                integral = false
                i += 1
                guard digits() > 0 else { throw fail("digits expected after '.'") }
            }
            if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
                integral = false
                i += 1
                if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
                guard digits() > 0 else { throw fail("digits expected in exponent") }
            }
            let text = String(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self)
            if integral, let v = Int(text) { return v }
            guard let d = Double(text) else { throw ParseError(offset: start, reason: "bad number \(text)") }
            return d
        }

        mutating func hex4() throws -> UInt32 {
            guard i + 4 <= b.count else { throw fail("truncated \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = b[i]
                let d: UInt32
                switch c {
                case 0x30...0x39: d = UInt32(c - 0x30)
                case 0x41...0x46: d = UInt32(c - 0x41 + 10)
                case 0x61...0x66: d = UInt32(c - 0x61 + 10)
                default: throw fail("bad hex digit in \\u escape")
                }
                v = v << 4 | d
                i += 1
            }
            return v
        }

        mutating func string() throws -> String {
            i += 1  // opening quote
            var out = [UInt8]()
            while true {
                guard i < b.count else { throw fail("unterminated string") }
                let c = b[i]
                if c == UInt8(ascii: "\"") { i += 1; break }
                if c < 0x20 { throw fail("control character in string") }
                if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
                i += 1
                guard i < b.count else { throw fail("unterminated escape") }
                let e = b[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var u = try hex4()
                    if (0xD800...0xDBFF).contains(u) {
                        guard i + 1 < b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else {
                            throw fail("unpaired surrogate in \\u escape")
                        }
                        i += 2
                        let lo = try hex4()
                        guard (0xDC00...0xDFFF).contains(lo) else { throw fail("bad low surrogate in \\u escape") }
                        u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(u) {
                        throw fail("unpaired surrogate in \\u escape")
                    }
                    out.append(contentsOf: Array(String(Character(Unicode.Scalar(u)!)).utf8))
                default: throw fail("bad escape")
                }
            }
            guard let s = String(validating: out, as: UTF8.self) else { throw fail("string is not valid UTF-8") }
            return s
        }
    }

    // MARK: writing

    /// Compact JSON with object keys sorted (JSONSerialization's `.sortedKeys`); "/" escaped as "\/"
    /// as Foundation does. Values: [String: Any], [Any], String, Bool, integers, Double, Float, JSONNull.
    package static func serialize(_ v: Any) throws -> [UInt8] {
        var out = [UInt8]()
        try write(v, &out)
        return out
    }

    static func writeString(_ s: String, _ out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for c in s.utf8 {
            switch c {
            case UInt8(ascii: "\""): out += Array("\\\"".utf8)
            case UInt8(ascii: "\\"): out += Array("\\\\".utf8)
            case UInt8(ascii: "/"): out += Array("\\/".utf8)
            case 0x08: out += Array("\\b".utf8)
            case 0x0C: out += Array("\\f".utf8)
            case 0x0A: out += Array("\\n".utf8)
            case 0x0D: out += Array("\\r".utf8)
            case 0x09: out += Array("\\t".utf8)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out += Array("\\u00".utf8)
                out.append(hex[Int(c >> 4)]); out.append(hex[Int(c & 15)])
            default: out.append(c)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    static func write(_ v: Any, _ out: inout [UInt8]) throws {
        switch v {
        case let d as [String: Any]:
            out.append(UInt8(ascii: "{"))
            for (n, k) in d.keys.sorted().enumerated() {
                if n > 0 { out.append(UInt8(ascii: ",")) }
                writeString(k, &out)
                out.append(UInt8(ascii: ":"))
                try write(d[k]!, &out)
            }
            out.append(UInt8(ascii: "}"))
        case let a as [Any]:
            out.append(UInt8(ascii: "["))
            for (n, x) in a.enumerated() {
                if n > 0 { out.append(UInt8(ascii: ",")) }
                try write(x, &out)
            }
            out.append(UInt8(ascii: "]"))
        case let s as String: writeString(s, &out)
        case let b as Bool: out += Array((b ? "true" : "false").utf8)
        case let i as Int: out += Array(String(i).utf8)
        case let i as Int64: out += Array(String(i).utf8)
        case let i as UInt64: out += Array(String(i).utf8)
        case let i as Int32: out += Array(String(i).utf8)
        case let d as Double:
            guard d.isFinite else { throw ParseError(offset: out.count, reason: "non-finite number \(d)") }
            if d == d.rounded(), abs(d) < 1e15 { out += Array(String(Int64(d)).utf8) } else { out += Array("\(d)".utf8) }
        case let f as Float: try write(Double(f), &out)
        case is JSONNull: out += Array("null".utf8)
        default:
            throw ParseError(offset: out.count, reason: "cannot write a value of type \(type(of: v)) as JSON")
        }
    }
}
