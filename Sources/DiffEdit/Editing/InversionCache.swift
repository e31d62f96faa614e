/// Inverted latent trajectories of recent edits, so that a second edit of the same image with the same
/// model, steps and source prompt skips the inversion (users iterate on the prompt). Bounded by entry
/// count and by floats held; the oldest entry is evicted first. Thread-safe.
public final class InversionCache: @unchecked Sendable {
    public struct Key: Hashable, Sendable {
        public var imageHash: UInt64
        public var width: Int
        public var height: Int
        public var steps: Int
        public var sourcePrompt: String
        public var scheduler: String
        /// The model's weights generation (StableDiffusionModel.weightsGeneration): a LoRA change invalidates.
        public var weights: Int = 0
    }

    public let maxEntries: Int
    public let maxFloats: Int
    private var entries: [(Key, [Tensor])] = []
    private let lock = NSLockLite()
    public private(set) var hits = 0
    public private(set) var misses = 0

    public init(maxEntries: Int = 4, maxFloats: Int = 64 << 20) {
        self.maxEntries = maxEntries; self.maxFloats = maxFloats
    }

    public var count: Int { lock.withLock { entries.count } }

    public func get(_ key: Key) -> [Tensor]? {
        lock.withLock {
            if let e = entries.first(where: { $0.0 == key }) { hits += 1; return e.1 }
            misses += 1
            return nil
        }
    }

    public func put(_ key: Key, _ trajectory: [Tensor]) {
        lock.withLock {
            entries.removeAll { $0.0 == key }
            entries.append((key, trajectory))
            func total() -> Int { entries.reduce(0) { $0 + $1.1.reduce(0) { $0 + $1.count } } }
            while entries.count > maxEntries || (entries.count > 1 && total() > maxFloats) { entries.removeFirst() }
        }
    }

    public func removeAll() { lock.withLock { entries.removeAll() } }

    /// FNV-1a over the pixels.
    public static func hash(_ image: RGBImage) -> UInt64 {
        var h: UInt64 = 0xcbf29ce484222325
        for b in image.pixels { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        return h
    }
}
