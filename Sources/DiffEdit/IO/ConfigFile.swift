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

    public static func decode<T: Decodable>(_ type: T.Type, from data: Data, origin: String) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let e as DecodingError {
            throw DiffEditError.model("\(origin): \(describe(e))")
        } catch {
            throw DiffEditError.model("\(origin): cannot parse config (\(error))")
        }
    }

    static func field(_ path: [CodingKey]) -> String {
        var s = ""
        for k in path {
            if let i = k.intValue { s += "[\(i)]" } else { s += (s.isEmpty ? "" : ".") + k.stringValue }
        }
        return s.isEmpty ? "(top level)" : s
    }

    static func describe(_ e: DecodingError) -> String {
        switch e {
        case .typeMismatch(let t, let c):
            return "field \(field(c.codingPath)): expected \(t)"
        case .valueNotFound(let t, let c):
            return "field \(field(c.codingPath)): null where \(t) was expected"
        case .keyNotFound(let k, let c):
            return "field \(field(c.codingPath + [k])): missing"
        case .dataCorrupted(let c):
            if c.codingPath.isEmpty { return "not valid JSON" }
            return "field \(field(c.codingPath)): invalid value (\(c.debugDescription))"
        @unknown default:
            return "cannot decode config"
        }
    }
}
