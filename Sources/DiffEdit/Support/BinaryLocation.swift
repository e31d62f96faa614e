import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// "Where is my binary": the one place Swift code asks where the running executable, or the binary that
/// holds this library's code, lies on disk (Linux: /proc/self). Used by the default-model search of the
/// CLI and the library (`DefaultModel`) and of the C ABI (Sources/DiffEditC/DefaultModelLocator.swift).
/// The CUDA provider search in CSources/CDiffKernels/registry.c answers the same question in C (dladdr
/// on its own code), because the kernel shim cannot call Swift.
public enum BinaryLocation {
    /// The folder of the running executable: /proc/self/exe with symlinks resolved; else the folder
    /// of argv[0] as given; nil when neither is known.
    public static func executableDirectory() -> String? {
        guard let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else {
            return (CommandLine.arguments.first.map { PathName.deletingLastComponent($0) })
        }
        return PathName.deletingLastComponent(exe)
    }

    /// The folder of the binary that contains this library's code: libdiffedit.so when the C ABI is
    /// loaded by a host program (the library is linked into it statically), the executable for the CLI,
    /// the test bundle under `swift test`. From the mapping in /proc/self/maps that holds the address of
    /// one of this module's functions; nil when it cannot be read or the mapping has no file path.
    public static func libraryDirectory() -> String? {
        let fn: @convention(c) () -> Void = {}   // code of this module, so inside whatever binary links it
        return directory(containing: unsafeBitCast(fn, to: UnsafeRawPointer.self))
    }

    /// The folder of the mapped file (executable or shared object) that holds `address`, from
    /// /proc/self/maps; nil when none does or the mapping is anonymous.
    public static func directory(containing address: UnsafeRawPointer) -> String? {
        let addr = UInt(bitPattern: address)
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
            let path = trimmed(fields[5])
            guard path.hasPrefix("/"), let slash = path.lastIndex(of: "/") else { return nil }
            return String(path[..<slash])
        }
        return nil
    }

    /// `s` without leading and trailing spaces and newlines.
    private static func trimmed(_ s: Substring) -> String {
        var s = s
        while let c = s.first, c == " " || c == "\n" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\n" { s.removeLast() }
        return String(s)
    }
}
