import Glibc
import Synchronization

/// The one allocator for large host buffers (issue 21): posix_memalign, which returns nil when the memory is not
/// there, where `UnsafeMutableRawPointer.allocate` and Swift arrays trap (SIGABRT takes a host such as GIMP down
/// with the user's work). Tensors (`TensorStorage`) take their host memory from it: op outputs
/// (`Backend.output`) and the other buffers that scale with the request (`Tensor.allocate`) through the throwing
/// `allocate(_:what:)`, so a real out-of-memory is `DiffEditError.outOfMemory` "out of memory allocating N bytes
/// for WHAT" and the call fails cleanly; the model and the context stay usable.
///
/// Swift arrays cannot take memory from an allocator: image-size arrays (an input converted to RGB, the output
/// image, masks) are checked with `reserve(_:what:)` first, a probe that allocates and frees the same number of
/// bytes (it fails where the array would; another thread may of course take the memory in between).
///
/// Test hook: `DIFFEDIT_TEST_ALLOC_LIMIT=N` (read once, at the first large allocation) or `testLimit` (tests in
/// process) makes every allocation or probe above N bytes fail as a real one would.
public enum HostMemory {
    /// Allocations above this many bytes fail (Int.max: no limit). Tests only.
    static let limit = Atomic<Int>(Int.max)
    private static let fromEnvironment: Int = {
        guard let v = getenv("DIFFEDIT_TEST_ALLOC_LIMIT"), let n = Int(String(cString: v)), n >= 0 else { return Int.max }
        limit.store(n, ordering: .relaxed)
        return n
    }()

    /// The test limit in bytes (nil: none). Setting it overrides DIFFEDIT_TEST_ALLOC_LIMIT.
    public static var testLimit: Int? {
        get { _ = fromEnvironment; let l = limit.load(ordering: .relaxed); return l == Int.max ? nil : l }
        set { _ = fromEnvironment; limit.store(newValue ?? Int.max, ordering: .relaxed) }
    }

    /// `bytes` (at least 1) aligned to `alignment` (a power of two, >= the pointer size), uninitialised; nil when
    /// the memory is not there (or above the test limit). Freed with `free`.
    public static func allocate(_ bytes: Int, alignment: Int = 64) -> UnsafeMutableRawPointer? {
        _ = fromEnvironment
        guard bytes >= 0, bytes <= limit.load(ordering: .relaxed) else { return nil }
        var p: UnsafeMutableRawPointer? = nil
        guard posix_memalign(&p, alignment, max(bytes, 1)) == 0 else { return nil }
        return p
    }

    /// `allocate`, or `.outOfMemory` "out of memory allocating N bytes for WHAT".
    public static func allocate(_ bytes: Int, what: @autoclosure () -> String, alignment: Int = 64) throws -> UnsafeMutableRawPointer {
        guard let p = allocate(bytes, alignment: alignment) else { throw failure(bytes, what()) }
        return p
    }

    /// Frees what `allocate` returned (nil is ignored).
    public static func free(_ p: UnsafeMutableRawPointer?) { Glibc.free(p) }

    /// Checks that `bytes` can be allocated now (allocates and frees them), else `.outOfMemory` naming `what`:
    /// for a Swift array of that size, which would trap instead of failing.
    public static func reserve(_ bytes: Int, what: @autoclosure () -> String) throws {
        free(try allocate(bytes, what: what(), alignment: 16))
    }

    /// Bytes of `counts` multiplied (saturating at Int.max: an absurd size fails to allocate instead of trapping).
    public static func bytes(_ counts: Int...) -> Int { product(counts) }

    /// The product of `counts`, saturating at Int.max.
    public static func product(_ counts: [Int]) -> Int {
        var r = 1
        for c in counts {
            let (m, o) = r.multipliedReportingOverflow(by: max(c, 0))
            if o { return Int.max }
            r = m
        }
        return r
    }

    static func failure(_ bytes: Int, _ what: String) -> DiffEditError {
        .outOfMemory("out of memory allocating \(bytes) bytes for \(what)")
    }
}
