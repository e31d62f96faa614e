#if canImport(Glibc)
import Glibc
#endif
import DiffEdit

/// argv as the CLI reads it: POSIX arguments are bytes (issue 21). An argument that is valid UTF-8 is used as
/// is. One that is not, and that is a path (it names an existing file or folder, or its folder exists and its
/// name ends in an extension the CLI reads or writes: .png, .jpg, .jpeg, .npy, .safetensors, .json), is reached
/// through a symbolic link with a UTF-8 name in a private temporary folder: the link's target is the
/// argument's bytes (made absolute), so reading, or creating an output, through the link touches exactly that
/// file. Every message shows the argument escaped (`PathName.escaped`, "\xFF") in place of the link
/// (`StdIO` applies `shown`). Any other argument (a prompt) is decoded with U+FFFD replacement, as the C ABI
/// decodes its strings. The folder and links are removed at exit.
enum ByteArguments {
    nonisolated(unsafe) private static var aliases: [(link: String, shown: String)] = []
    nonisolated(unsafe) private static var folder: [CChar]? = nil
    static let pathExtensions: Set<String> = ["png", "jpg", "jpeg", "npy", "safetensors", "json"]

    /// The arguments after the program name.
    static func decode() -> [String] {
        let argc = Int(CommandLine.argc)
        var out: [String] = []
        for i in 1..<max(argc, 1) {
            guard let p = CommandLine.unsafeArgv[i] else { continue }
            let bytes = Array(UnsafeBufferPointer(start: UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self), count: strlen(p)))
            if let s = String(validating: bytes, as: UTF8.self) { out.append(s); continue }
            out.append(alias(bytes, index: i) ?? String(decoding: bytes, as: UTF8.self))
        }
        return out
    }

    /// `s` with every link name replaced by the argument it stands for, escaped.
    static func shown(_ s: String) -> String {
        var r = s
        for a in aliases where r.contains(a.link) { r = r.replacing(a.link, with: a.shown) }
        return r
    }

    static func exists(_ bytes: [UInt8]) -> Bool {
        var st = stat()
        return (bytes + [0]).withUnsafeBufferPointer { stat(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), &st) } == 0
    }

    /// The link for path argument `bytes`, nil when it does not look like a path.
    private static func alias(_ bytes: [UInt8], index: Int) -> String? {
        let slash = bytes.lastIndex(of: UInt8(ascii: "/"))
        let name = slash.map { Array(bytes[($0 + 1)...]) } ?? bytes
        var ext = ""
        if let dot = name.lastIndex(of: UInt8(ascii: ".")),
           let e = String(validating: name[(dot + 1)...], as: UTF8.self), pathExtensions.contains(e.lowercased()) { ext = "." + e }
        if !exists(bytes) {
            let parent: [UInt8] = slash.map { $0 == 0 ? [UInt8(ascii: "/")] : Array(bytes[..<$0]) } ?? [UInt8(ascii: ".")]
            guard !ext.isEmpty, exists(parent) else { return nil }
        }
        var target = bytes
        if bytes.first != UInt8(ascii: "/") {
            var cwd = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            guard getcwd(&cwd, cwd.count) != nil else { return nil }
            target = Array(UnsafeRawBufferPointer(start: cwd, count: strlen(cwd))) + [UInt8(ascii: "/")] + bytes
        }
        guard let dir = makeFolder() else { return nil }
        let link = dir + "/arg\(index)\(ext)"
        let ok = (target + [0]).withUnsafeBufferPointer {
            symlink(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), link) == 0
        }
        guard ok else { return nil }
        aliases.append((link, PathName.escaped(bytes)))
        return link
    }

    private static func makeFolder() -> String? {
        if let f = folder { return String(cString: f) }
        let base = String(cString: getenv("TMPDIR") ?? strdup("/tmp")!)
        var t = Array("\(base)/diffedit-args-XXXXXX".utf8CString)
        guard mkdtemp(&t) != nil else { return nil }
        folder = t
        atexit {
            guard let f = ByteArguments.folder else { return }
            for a in ByteArguments.aliases { unlink(a.link) }
            rmdir(f)
        }
        return String(cString: t)
    }
}
