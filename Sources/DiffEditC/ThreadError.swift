#if canImport(Glibc)
import Glibc
#endif

/// The calling thread's last error message (`diff_edit_last_error(NULL)`): a malloc'd buffer of
/// `ErrorSlot.capacity` bytes per thread, found through a pthread key and freed when the thread ends.
enum ThreadError {
    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        let rc = pthread_key_create(&k, { p in free(p) })
        precondition(rc == 0, "diffedit: pthread_key_create failed")  // internal: out of keys
        return k
    }()

    /// The thread's buffer, allocated (zeroed) on first use; nil only when malloc fails.
    private static func buffer() -> UnsafeMutablePointer<CChar>? {
        if let p = pthread_getspecific(key) { return p.assumingMemoryBound(to: CChar.self) }
        guard let p = calloc(ErrorSlot.capacity, 1) else { return nil }
        pthread_setspecific(key, p)
        return p.assumingMemoryBound(to: CChar.self)
    }

    static func set(_ message: String) {
        guard let b = buffer() else { return }
        ErrorSlot.write(message, into: b, capacity: ErrorSlot.capacity)
    }

    static var cString: UnsafePointer<CChar> {
        if let b = buffer() { return UnsafePointer(b) }
        return StaticStrings.empty
    }
}
