import Synchronization

/// What a network's parameters hold in memory, by storage element type, as WeightScope loads them
/// (a test and benchmark aid: which weights stayed reduced, how many bytes, how many are read in place
/// from the memory-mapped checkpoint rather than copied).
public final class WeightTally: Sendable {
    public struct Summary: Sendable, Equatable {
        /// Bytes per element type name ("f32", "f16", "bf16", "q8_0").
        public var bytes: [String: Int] = [:]
        /// Tensors per element type name.
        public var tensors: [String: Int] = [:]
        /// Of `bytes`, those used in place from a memory-mapped file (no copy).
        public var mappedBytes = 0
        public var totalBytes: Int { bytes.values.reduce(0, +) }

        public static func + (a: Summary, b: Summary) -> Summary {
            var r = a
            for (k, v) in b.bytes { r.bytes[k, default: 0] += v }
            for (k, v) in b.tensors { r.tensors[k, default: 0] += v }
            r.mappedBytes += b.mappedBytes
            return r
        }
    }

    private let state = Mutex(Summary())

    public init() {}

    func record(_ t: Tensor) {
        let type = t.elementType.name, bytes = t.storedBytes, mapped = t.storage.isMapped
        state.withLock {
            $0.bytes[type, default: 0] += bytes
            $0.tensors[type, default: 0] += 1
            if mapped { $0.mappedBytes += bytes }
        }
    }

    public var summary: Summary { state.withLock { $0 } }
}
