import FoundationEssentials

/// Where the embedded default models (models/toy-instruct and models/toy-sd, trained by tools/ on the
/// toy world; see models/README.md) are found when a model path is nil or empty. The default for
/// editing (CLI `edit`, the C ABI) is toy-instruct; text-to-image (`generate`) and the sdedit/ddim/p2p
/// methods use toy-sd. In order:
/// 1. $DIFFEDIT_DEFAULT_MODEL: the model folder or file itself (as the C ABI);
/// 2. $DIFFEDIT_MODEL_DIR: a folder holding toy-sd/ (or itself a model folder with model_index.json);
/// 3. next to the running executable: <dir>/models/toy-sd, <dir>/../share/diffedit/models/toy-sd, and
///    models/toy-sd in each parent folder up to five levels (a build tree inside the repository);
/// 4. the source tree this library was built from (<repo>/models/toy-sd);
/// 5. ./models/toy-sd in the working directory.
public enum DefaultModel {
    /// The editing default (InstructPix2Pix): `diffedit edit --prompt "make the circle blue"`.
    public static let name = "toy-instruct"
    /// The text-to-image default (4-channel UNet): `generate`, and the sdedit / ddim / p2p methods.
    public static let textToImageName = "toy-sd"

    /// Every place looked at, in order (existing or not).
    public static func candidates(name: String = DefaultModel.name) -> [String] {
        var out: [String] = []
        let env = ProcessInfo.processInfo.environment
        if let p = env["DIFFEDIT_DEFAULT_MODEL"], !p.isEmpty { out.append(p) }
        if let d = env["DIFFEDIT_MODEL_DIR"], !d.isEmpty {
            out.append(PathName.join(d, name))
            out.append(d)
        }
        if let exe = BinaryLocation.executableDirectory() {
            var dir = PathName.standardizing(exe)
            out.append(PathName.join(dir, "models/\(name)"))
            out.append(PathName.join(dir, "../share/diffedit/models/\(name)"))
            for _ in 0..<5 {
                dir = PathName.deletingLastComponent(dir)
                if dir.utf16.count <= 1 { break }
                out.append(PathName.join(dir, "models/\(name)"))
            }
        }
        // Sources/DiffEdit/Pipeline/DefaultModel.swift -> <repo>/models/toy-sd
        let src = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        out.append(src.appendingPathComponent("models/\(name)").standardizedFileURL.path)
        out.append(PathName.join(FileManager.default.currentDirectoryPath, "models/\(name)"))
        return out
    }

    /// The default model's path; throws `.io` listing the places looked at when there is none.
    public static func resolve(name: String = DefaultModel.name) throws -> String {
        let env = ProcessInfo.processInfo.environment
        if let p = env["DIFFEDIT_DEFAULT_MODEL"], !p.isEmpty {
            guard FileManager.default.fileExists(atPath: p) else {
                throw DiffEditError.io("default model: DIFFEDIT_DEFAULT_MODEL=\"\(p)\" does not exist")
            }
            return p
        }
        var list: [String] = []
        for c in candidates(name: name) where !list.contains(c) { list.append(c) }
        for c in list where isModel(c) { return c }
        throw DiffEditError.io("default model \(name): not found (looked in \(list.joined(separator: ", "))); pass --model PATH or set DIFFEDIT_MODEL_DIR")
    }

    /// A diffusers folder (has unet/config.json) or a .safetensors file.
    static func isModel(_ p: String) -> Bool {
        var isDir = false
        guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir) else { return false }
        if isDir { return FileManager.default.fileExists(atPath: PathName.join(p, "unet/config.json")) }
        return p.hasSuffix(".safetensors")
    }
}
