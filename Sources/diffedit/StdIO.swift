#if canImport(Glibc)
import Glibc
#endif

/// Unbuffered writes to fd 1 / fd 2, as FileHandle.standardOutput/.standardError.write did (without
/// full Foundation).
enum StdIO {
    static func write(_ fd: Int32, _ s: String) {
        var bytes = Array(ByteArguments.shown(s).utf8)   // a non-UTF-8 path argument appears escaped, not as its link
        var off = 0
        bytes.withUnsafeMutableBytes { raw in
            while off < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + off, raw.count - off)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                off += n
            }
        }
    }

    static func err(_ s: String) { write(2, s) }
    static func out(_ s: String) { write(1, s) }
}

/// The CLI's `print` goes through `StdIO.out` too, so that a non-UTF-8 path argument appears escaped in
/// every line (`ByteArguments.shown`), not only in messages.
func print(_ items: Any..., separator: String = " ", terminator: String = "\n") {
    StdIO.out(items.map { "\($0)" }.joined(separator: separator) + terminator)
}
