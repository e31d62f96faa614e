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
    /// The storages read in place from a memory-mapped checkpoint (what `releaseMappedPages` drops).
    private let mapped = Mutex<[TensorStorage]>([])

    public init() {}

    func record(_ t: Tensor) {
        let type = t.elementType.name, bytes = t.storedBytes, mapped = t.storage.isMapped
        state.withLock {
            $0.bytes[type, default: 0] += bytes
            $0.tensors[type, default: 0] += 1
            if mapped { $0.mappedBytes += bytes }
        }
        if mapped { self.mapped.withLock { $0.append(t.storage) } }
    }

    public var summary: Summary { state.withLock { $0 } }

    /// Drops the resident pages of every weight this network reads in place from a memory-mapped checkpoint
    /// (madvise MADV_DONTNEED: MemoryMappedFile.releasePages), once a phase of a request is done with the
    /// network (the text encoder after the prompts, the UNet before the VAE decode, the VAE after it), so the
    /// process's resident set holds the weights of the network at work, not of all three. Nothing is lost:
    /// the next read faults the pages back in from the file (from the page cache while it holds them: minor
    /// faults, no copy). Weights converted at load (f32, q8_0, ...) own their memory and are not affected.
    public func releaseMappedPages() {
        for s in mapped.withLock({ $0 }) { s.releaseMappedPages() }
    }
}
