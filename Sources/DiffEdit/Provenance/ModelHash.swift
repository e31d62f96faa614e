#if canImport(Glibc)
import Glibc
#endif

/// The SHA-256 of a model's weights for the provenance record, computed once per weight file and cached.
///
/// - A single-file checkpoint: the SHA-256 of the file (what model hubs list as the file's SHA256).
/// - A diffusers folder: the SHA-256 of the text `"<sha256>  <relative path>\n"` over its weight files
///   (*.safetensors, *.bin, *.ckpt, *.pt, *.pth under it, sorted by path: `sha256sum` output of those files,
///   run from the folder), so the hash changes with any weight file and with nothing else.
/// Cache: per weight file, a small text file `<file>.diffedit-sha256` beside it holding the hash, the file's
/// size and its modification time in nanoseconds; when the file's size or mtime differ, the cache is stale
/// and the file is hashed again. When the model's folder is not writable, the cache goes to
/// `$DIFFEDIT_CACHE_DIR` (else `$XDG_CACHE_HOME/diffedit`, else `~/.cache/diffedit`) under `hashes/`,
/// named by the SHA-256 of the file's absolute path. A cache that cannot be written anywhere only costs
/// hashing again next time.
public enum ModelHash {
    static let weightExtensions = ["safetensors", "bin", "ckpt", "pt", "pth"]
    public static let cacheSuffix = ".diffedit-sha256"

    /// The model hash of a checkpoint file or diffusers folder. `hashed` is told each file that had to be read.
    public static func sha256(modelPath: String, hashed: ((String) -> Void)? = nil) throws -> String {
        var st = stat()
        guard stat(modelPath, &st) == 0 else {
            throw DiffEditError.io("\(modelPath): cannot stat for hashing (\(String(cString: strerror(errno))))")
        }
        if (st.st_mode & S_IFMT) != S_IFDIR { return try fileSHA256(modelPath, hashed: hashed) }
        let files = try weightFiles(in: modelPath)
        guard !files.isEmpty else { throw DiffEditError.model("\(modelPath): no weight files to hash") }
        var text = ""
        for rel in files { text += try fileSHA256(modelPath + "/" + rel, hashed: hashed) + "  " + rel + "\n" }
        return SHA256.hex(of: Array(text.utf8))
    }

    /// Weight files under a folder, relative paths, sorted (byte order).
    static func weightFiles(in dir: String, prefix: String = "", depth: Int = 0) throws -> [String] {
        guard depth < 4, let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var out: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name == "." || name == ".." || name.hasPrefix(".") { continue }
            let full = dir + "/" + name
            var st = stat()
            guard stat(full, &st) == 0 else { continue }
            if (st.st_mode & S_IFMT) == S_IFDIR {
                out += try weightFiles(in: full, prefix: prefix + name + "/", depth: depth + 1)
            } else if weightExtensions.contains(PathName.pathExtension(name).lowercased()) {
                out.append(prefix + name)
            }
        }
        return out.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    }

    /// The SHA-256 of one file, from its cache when the cache matches the file's size and mtime.
    public static func fileSHA256(_ path: String, hashed: ((String) -> Void)? = nil) throws -> String {
        var st = stat()
        guard stat(path, &st) == 0 else { throw DiffEditError.io("\(path): cannot stat for hashing (\(String(cString: strerror(errno))))") }
        let size = Int64(st.st_size)
        let mtime = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        let places = cachePlaces(for: path)
        for c in places {
            if let h = readCache(c, size: size, mtime: mtime) { return h }
        }
        hashed?(path)
        let h = try SHA256.file(path)
        let text = "sha256 \(h)\nsize \(size)\nmtime_ns \(mtime)\n"
        for c in places where writeCache(c, text) { break }
        return h
    }

    /// Beside the file first, then the user cache directory.
    static func cachePlaces(for path: String) -> [String] {
        var out = [path + cacheSuffix]
        let env = { (k: String) -> String? in getenv(k).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } }
        let base = env("DIFFEDIT_CACHE_DIR") ?? env("XDG_CACHE_HOME").map { $0 + "/diffedit" } ?? env("HOME").map { $0 + "/.cache/diffedit" }
        if let base {
            var abs = path
            if !path.hasPrefix("/"), let r = realpath(path, nil) { abs = String(cString: r); free(r) }
            out.append(base + "/hashes/" + SHA256.hex(of: Array(abs.utf8)) + cacheSuffix)
        }
        return out
    }

    static func readCache(_ path: String, size: Int64, mtime: Int64) -> String? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var buf = [CChar](repeating: 0, count: 512)
        let n = fread(&buf, 1, 511, f)
        let text = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let kv = line.split(separator: " ", maxSplits: 1)
            if kv.count == 2 { fields[String(kv[0])] = String(kv[1]) }
        }
        guard let h = fields["sha256"], h.count == 64, h.allSatisfy({ $0.isHexDigit }),
              fields["size"] == String(size), fields["mtime_ns"] == String(mtime) else { return nil }
        return h
    }

    /// Writes atomically (temporary file + rename); false when the place is not writable.
    static func writeCache(_ path: String, _ text: String) -> Bool {
        let dir = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        if !dir.isEmpty { makeDirs(dir) }
        let tmp = path + ".tmp\(getpid())"
        guard let f = fopen(tmp, "w") else { return false }
        let bytes = Array(text.utf8)
        let ok = fwrite(bytes, 1, bytes.count, f) == bytes.count
        if fclose(f) != 0 || !ok { unlink(tmp); return false }
        if rename(tmp, path) != 0 { unlink(tmp); return false }
        return true
    }

    static func makeDirs(_ dir: String) {
        var cur = dir.hasPrefix("/") ? "" : "."
        for part in dir.split(separator: "/") {
            cur += "/" + part
            mkdir(cur, 0o755)
        }
    }
}
