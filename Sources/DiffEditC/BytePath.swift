import Glibc
import DiffEdit

/// `diff_edit_model_params.path` is bytes (a POSIX path need not be UTF-8), but the library opens files
/// by String. A path that is not valid UTF-8 is opened here, as given, with O_PATH, and the model is
/// loaded through the descriptor's name "/proc/self/fd/N" (which the kernel resolves to the same file
/// or folder); `EngineLoader` closes it after the load and puts the path, escaped (`PathName.escaped`:
/// "\xFF" for a byte that is not UTF-8), into the model's origin and every message in place of the
/// descriptor's name.
enum BytePath {
    struct Opened {
        let fd: Int32
        /// The path as messages show it.
        let shown: String
        let thread: pthread_t
    }

    /// Linux's O_PATH (010000000 on every architecture Swift runs on), which Glibc's module hides
    /// behind _GNU_SOURCE: a descriptor that names a file or folder without opening it for reading.
    static let oPath: Int32 = 0o10000000

    private static let lock = NSLockLite()
    nonisolated(unsafe) private static var open: [String: Opened] = [:]

    /// Opens `cPath` (not valid UTF-8) and returns the name to load it by. `.io` naming the escaped path
    /// when it cannot be opened or read.
    static func open(_ cPath: UnsafePointer<CChar>) throws -> String {
        let bytes = Array(UnsafeBufferPointer(start: UnsafeRawPointer(cPath).assumingMemoryBound(to: UInt8.self), count: strlen(cPath)))
        let shown = PathName.escaped(bytes)
        let fd = Glibc.open(cPath, oPath | O_CLOEXEC)
        guard fd >= 0 else {
            throw DiffEditError.io("params->path \"\(shown)\": \(String(cString: strerror(errno)))")
        }
        let name = "/proc/self/fd/\(fd)"
        guard access(name, F_OK) == 0 else {
            close(fd)
            throw DiffEditError.unsupported("params->path \"\(shown)\" is not valid UTF-8 and /proc/self/fd, needed to open it by, is not mounted")
        }
        guard access(name, R_OK) == 0 else {
            let e = errno
            close(fd)
            throw DiffEditError.io("params->path \"\(shown)\": \(String(cString: strerror(e)))")
        }
        let me = pthread_self()
        lock.withLock {
            // a load on this thread that never reached EngineLoader (it failed in between) left its
            // descriptor here: a thread loads one model at a time, so close it now
            for (k, o) in open where pthread_equal(o.thread, me) != 0 { close(o.fd); open[k] = nil }
            open[name] = Opened(fd: fd, shown: shown, thread: me)
        }
        return name
    }

    /// The descriptor opened for `name` by `open`, now owned by the caller (who closes it); nil for an
    /// ordinary path.
    static func take(_ name: String) -> Opened? {
        guard name.hasPrefix("/proc/self/fd/") else { return nil }
        return lock.withLock {
            let o = open[name]
            open[name] = nil
            return o
        }
    }
}
