import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// A whole file mapped read-only into memory (copy-on-write private mapping, so borrowed tensors may
/// be written to without touching the file). Unmapped when the last reference goes away.
public final class MemoryMappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    /// Start of the mapping (nil for an empty file).
    public let base: UnsafeMutableRawPointer?

    /// Maps `path`. Throws `.io` naming the file when it is missing, a directory, or unreadable.
    public init(path: String) throws {
        self.path = path
        var st = stat()
        guard stat(path, &st) == 0 else {
            let e = errno
            if e == ENOENT { throw DiffEditError.io("\(path): no such file") }
            throw DiffEditError.io("\(path): cannot stat file (\(String(cString: strerror(e))))")
        }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw DiffEditError.io("\(path): is a directory, expected a file") }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let e = errno
            throw DiffEditError.io("\(path): cannot open file (\(String(cString: strerror(e))))")
        }
        defer { close(fd) }
        guard fstat(fd, &st) == 0 else { throw DiffEditError.io("\(path): cannot stat file") }
        let n = Int(st.st_size)
        self.size = n
        if n == 0 { self.base = nil; return }
        let p = mmap(nil, n, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else {
            let e = errno
            throw DiffEditError.io("\(path): cannot memory-map file (\(String(cString: strerror(e))))")
        }
        self.base = p
    }

    /// The bytes [offset, offset+count); the caller has checked the range.
    public func bytes(_ offset: Int, _ count: Int) -> UnsafeRawBufferPointer {
        precondition(offset >= 0 && count >= 0 && offset + count <= size, "MemoryMappedFile: range out of bounds")
        guard let base else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + offset, count: count)
    }

    /// Drops the resident pages that lie wholly inside [offset, offset+count) (madvise MADV_DONTNEED) once
    /// their data has been converted or copied elsewhere, so the file's pages do not stay in memory beside
    /// the converted copy. The mapping stays valid: a later read faults the pages back in from the file.
    /// Only for ranges nobody wrote through (a private mapping would lose the writes).
    public func releasePages(_ offset: Int, _ count: Int) {
        guard let base, count > 0, offset >= 0, offset + count <= size else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard page > 0 else { return }
        let start = Int(bitPattern: base) + offset, end = start + count
        let a = (start + page - 1) / page * page, b = end / page * page
        if b > a { _ = madvise(UnsafeMutableRawPointer(bitPattern: a), b - a, Int32(MADV_DONTNEED)) }
    }

    deinit {
        if let base { munmap(base, size) }
    }
}
