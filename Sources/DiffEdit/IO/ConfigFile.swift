import FoundationEssentials

/// Reads diffusers/transformers JSON config files into the Decodable config structs
/// (UNetConfig, VAEConfig, CLIPTextConfig, SchedulerConfig, ...). Errors name the file and field.
public enum ConfigFile {
    public static func load<T: Decodable>(_ type: T.Type, path: String) throws -> T {
        let data = try readData(path)
        return try decode(type, from: data, origin: path)
    }

    /// Reads a whole (small) file; `.io` naming the file when missing or unreadable.
    public static func readData(_ path: String) throws -> Data {
        var isDir = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw DiffEditError.io("\(path): no such file")
        }
        if isDir { throw DiffEditError.io("\(path): is a directory, expected a file") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DiffEditError.io("\(path): cannot read file (permission denied?)")
        }
        return data
    }

    /// Parses a JSON object file into a dictionary (model_index.json, tokenizer_config.json, ...).
    public static func object(path: String) throws -> [String: Any] {
        let data = try readData(path)
        guard let obj = (try? JSONAny.parse(data)) as? [String: Any] else {
            throw DiffEditError.model("\(path): not a JSON object")
        }
        return obj
    }

    /// Decodes a config and checks its limits (`LimitedConfig`): errors are `.model` naming `origin` and
    /// the field, e.g. "ORIGIN: field layers_per_block: expected an integer, got 1.5".
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data, origin: String) throws -> T {
        let value: T
        do {
            value = try JSONDecoder().decode(T.self, from: data)
        } catch let e as DecodingError {
            throw DiffEditError.model("\(origin): \(describe(e, data: data, type: T.self))")
        } catch {
            throw DiffEditError.model("\(origin): cannot parse config (\(error))")
        }
        if let limited = value as? LimitedConfig { try limited.checkLimits(origin: origin) }
        return value
    }

    static func field(_ path: [CodingKey]) -> String {
        var s = ""
        for k in path {
            if let i = k.intValue { s += "[\(i)]" } else { s += (s.isEmpty ? "" : ".") + k.stringValue }
        }
        return s.isEmpty ? "(top level)" : s
    }

    /// Words for a type the decoder expected.
    static func typeName(_ t: Any.Type) -> String {
        switch t {
        case is Int.Type, is Int32.Type, is Int64.Type, is UInt.Type, is UInt32.Type, is UInt64.Type: return "an integer"
        case is Float.Type, is Double.Type: return "a number"
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        case is [Int].Type: return "an integer or a list of integers"
        case is [String].Type: return "a list of strings"
        default: return "\(t)"
        }
    }

    /// The JSON text of the value at `path` in `json` (nil when absent).
    static func valueText(_ json: Any?, _ path: [CodingKey]) -> String? {
        var v: Any? = json
        for k in path {
            if let i = k.intValue, let a = v as? [Any] { v = i < a.count ? a[i] : nil }
            else if let d = v as? [String: Any] { v = d[k.stringValue] }
            else { return nil }
        }
        guard let v else { return nil }
        if v is JSONNull { return "null" }
        if let s = v as? String { return "\"\(s)\"" }
        if v is [Any] { return "a list" }
        if v is [String: Any] { return "an object" }
        return "\(v)"
    }

    static func describe<T: Decodable>(_ e: DecodingError, data: Data, type: T.Type) -> String {
        let json = try? JSONAny.parse(data)
        switch e {
        case .typeMismatch(let t, let c):
            let got = valueText(json, c.codingPath).map { ", got \($0)" } ?? ""
            return "field \(field(c.codingPath)): expected \(typeName(t))\(got)"
        case .valueNotFound(let t, let c):
            return "field \(field(c.codingPath)): null where \(typeName(t)) was expected"
        case .keyNotFound(let k, let c):
            return "field \(field(c.codingPath + [k])): missing"
        case .dataCorrupted(let c):
            if !c.codingPath.isEmpty { return "field \(field(c.codingPath)): invalid value (\(c.debugDescription))" }
            do {
                _ = try JSONAny.parse(data)
            } catch {
                return "not valid JSON (\(error))"
            }
            // Valid JSON that JSONDecoder calls corrupted: a number that does not fit an integer field
            // (1.5, 1e30), reported without a path. Find the field by trying each such number as a string.
            return numberField(data: data, json: json, type: T.self) ?? "a number does not fit its field (\(c.debugDescription))"
        @unknown default:
            return "cannot decode config"
        }
    }

    /// Paths and texts of the numbers in `v` that are not integers fitting an Int.
    static func nonIntegers(_ v: Any, _ path: [String], _ out: inout [([String], Any)]) {
        if let d = v as? [String: Any] {
            for k in d.keys.sorted() { nonIntegers(d[k]!, path + [k], &out) }
        } else if let a = v as? [Any] {
            for (i, x) in a.enumerated() { nonIntegers(x, path + ["[\(i)]"], &out) }
        } else if let d = v as? Double, !(d == d.rounded() && abs(d) < 9.2e18) {
            out.append((path, v))   // 1.5, 1e30: what an integer field refuses (1e10 decodes as an Int)
        }
    }

    static func replacing(_ v: Any, at path: ArraySlice<String>, with r: Any) -> Any {
        guard let k = path.first else { return r }
        if var d = v as? [String: Any], let x = d[k] { d[k] = replacing(x, at: path.dropFirst(), with: r); return d }
        if var a = v as? [Any], k.hasPrefix("["), let i = Int(k.dropFirst().dropLast()), i < a.count {
            a[i] = replacing(a[i], at: path.dropFirst(), with: r); return a
        }
        return v
    }

    static func numberField<T: Decodable>(data: Data, json: Any?, type: T.Type) -> String? {
        guard let json else { return nil }
        var candidates: [([String], Any)] = []
        nonIntegers(json, [], &candidates)
        for (path, number) in candidates.prefix(64) {
            let probe = replacing(json, at: path[...], with: "diffedit-probe")
            guard let bytes = try? JSONAny.serialize(probe) else { continue }
            do {
                _ = try JSONDecoder().decode(T.self, from: Data(bytes))
            } catch DecodingError.typeMismatch(let t, let c) {
                let name = path.reduce("") { s, k in k.hasPrefix("[") || s.isEmpty ? s + k : s + "." + k }
                // only an integer field refuses a number; a Float field refusing the probe string is no culprit
                let expected = typeName(t)
                if field(c.codingPath) == name, expected.hasPrefix("an integer") {
                    return "field \(name): expected \(expected), got \(number)"
                }
            } catch {}
        }
        return nil
    }
}
