import Glibc

/// A scratch file for harnesses whose parser takes a path: created once, unlinked at once (nothing is left
/// behind when libFuzzer exits or crashes) and reached as /proc/self/fd/N. `write` replaces its contents;
/// `sparseTail` extends it with that many zero bytes that take no memory or disk (a data area for headers).
final class FuzzFile {
    let fd: Int32
    let path: String

    init(_ tag: String) {
        var template = Array("/tmp/diffedit-fuzz-\(tag)-XXXXXX".utf8CString)
        fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        precondition(fd >= 0, "FuzzFile: mkstemp failed")
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        path = "/proc/self/fd/\(fd)"
    }

    func write(_ parts: [UnsafeRawBufferPointer], sparseTail: Int = 0) {
        precondition(ftruncate(fd, 0) == 0)
        var offset = 0
        for p in parts where p.count > 0 {
            precondition(pwrite(fd, p.baseAddress!, p.count, off_t(offset)) == p.count)
            offset += p.count
        }
        if sparseTail > 0 { precondition(ftruncate(fd, off_t(offset + sparseTail)) == 0) }
    }
}
