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
        if let dir = BinaryLocation.libraryDirectory() {   // libdiffedit.so's folder
            candidates.append(dir + "/../share/diffedit/models/" + modelName)
            candidates.append(dir + "/../../models/" + modelName)
        }
        for c in candidates where exists(c) { return c }
        if let p = try? DefaultModel.resolve() { return p }   // next to the executable, the source tree
        let looked = candidates + DefaultModel.candidates()
        throw DiffEditError.io("default model (params->path NULL or \"\"): \(modelName) not found; looked in \(looked.joined(separator: ", ")); set params->path or the environment variable DIFFEDIT_DEFAULT_MODEL")
    }

    private static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }
}
