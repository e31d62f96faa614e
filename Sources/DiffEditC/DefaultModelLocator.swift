#if canImport(Glibc)
import Glibc
#endif
import DiffEdit

/// Finds the default model for `path` NULL or "": $DIFFEDIT_DEFAULT_MODEL, else
/// <dir of libdiffedit.so>/../share/diffedit/models/toy-instruct (installed), else
/// <dir of libdiffedit.so>/../../models/toy-instruct (the repository's build/lib), else the places
/// `DefaultModel` looks (next to the executable, the source tree).
enum DefaultModelLocator {
    static let modelName = DefaultModel.name   // toy-instruct: AUTO edits with InstructPix2Pix

    static func resolve() throws -> String {
        if let env = getenv("DIFFEDIT_DEFAULT_MODEL"), let s = String(validatingCString: env), !s.isEmpty {
            guard exists(s) else {
                throw DiffEditError.io("default model: DIFFEDIT_DEFAULT_MODEL=\"\(s)\" does not exist")
            }
            return s
        }
        var candidates: [String] = []
        if let dir = libraryDirectory() {
            candidates.append(dir + "/../share/diffedit/models/" + modelName)
            candidates.append(dir + "/../../models/" + modelName)
        }
        for c in candidates where exists(c) { return c }
        if let p = try? DefaultModel.resolve() { return p }   // next to the executable, the source tree
        let looked = candidates + DefaultModel.candidates()
        throw DiffEditError.io("default model (params->path NULL or \"\"): \(modelName) not found; looked in \(looked.joined(separator: ", ")); set params->path or the environment variable DIFFEDIT_DEFAULT_MODEL")
    }

    private static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Directory of the shared object (or executable) that contains this code, from the mapping
    /// in /proc/self/maps that holds the address of one of our functions (Linux).
    private static func libraryDirectory() -> String? {
        let fn: @convention(c) () -> Void = {}   // code of this module, so inside libdiffedit
        let addr = UInt(bitPattern: unsafeBitCast(fn, to: UnsafeRawPointer.self))
        guard let f = fopen("/proc/self/maps", "r") else { return nil }
        defer { fclose(f) }
        var line: UnsafeMutablePointer<CChar>? = nil
        var cap = 0
        defer { free(line) }
        while getline(&line, &cap, f) > 0 {
            guard let l = line, let s = String(validatingCString: l) else { continue }
            // "start-end perms offset dev inode   path"
            let fields = s.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard fields.count == 6 else { continue }
            let range = fields[0].split(separator: "-")
            guard range.count == 2, let lo = UInt(range[0], radix: 16), let hi = UInt(range[1], radix: 16),
                  addr >= lo && addr < hi else { continue }
            let path = fields[5].trimmingCharacters(in: " \n")
            guard path.hasPrefix("/"), let slash = path.lastIndex(of: "/") else { return nil }
            return String(path[..<slash])
        }
        return nil
    }
}

private extension Substring {
    func trimmingCharacters(in set: String) -> String {
        var s = self
        while let c = s.first, set.contains(c) { s.removeFirst() }
        while let c = s.last, set.contains(c) { s.removeLast() }
        return String(s)
    }
}
