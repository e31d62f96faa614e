#if canImport(Glibc)
import Glibc
#endif

/// A fixed, NUL-terminated C string buffer that holds the last error message of a context or a
/// thread. The buffer is allocated once and never moves, so the pointer handed out by
/// `diff_edit_last_error` stays valid until the next message overwrites it or the owner goes away.
final class ErrorSlot: @unchecked Sendable {
    /// Capacity including the terminating NUL; longer messages are cut at a UTF-8 boundary.
    static let capacity = 2048
    let buffer: UnsafeMutablePointer<CChar>

    init() {
        buffer = UnsafeMutablePointer<CChar>.allocate(capacity: ErrorSlot.capacity)
        buffer.initialize(repeating: 0, count: ErrorSlot.capacity)
    }

    deinit { buffer.deallocate() }

    var cString: UnsafePointer<CChar> { UnsafePointer(buffer) }

    /// Stores `message`, truncated to capacity - 1 bytes without splitting a UTF-8 sequence.
    func set(_ message: String) {
        ErrorSlot.write(message, into: buffer, capacity: ErrorSlot.capacity)
    }

    static func write(_ message: String, into buffer: UnsafeMutablePointer<CChar>, capacity: Int) {
        var bytes = Array(message.utf8)
        if bytes.count > capacity - 1 {
            var n = capacity - 1
            while n > 0 && (bytes[n] & 0xC0) == 0x80 { n -= 1 }   // do not cut inside a code point
            bytes.removeSubrange(n...)
        }
        for (i, b) in bytes.enumerated() where b == 0 { bytes[i] = 0x3F }  // '?' for embedded NUL
        bytes.withUnsafeBufferPointer { src in
            UnsafeMutableRawPointer(buffer).copyMemory(from: src.baseAddress!, byteCount: src.count)
        }
        buffer[bytes.count] = 0
    }
}
