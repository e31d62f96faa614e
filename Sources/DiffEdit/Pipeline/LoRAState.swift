import Synchronization

/// What a model's LoRA fusing keeps: the files and scales fused now, the original data of every weight
/// they touched (to go back to it exactly), and a generation counter that caches key on.
final class LoRAState: @unchecked Sendable {
    struct Data {
        var specs: [LoRASpec] = []
        /// "unet|<name>" / "text_encoder|<name>" -> the weight's data before any LoRA.
        var originals: [String: TensorStorage] = [:]
        var generation = 0
    }
    let data = Mutex<Data>(Data())
    /// Held while the weights change (one setLoRAs at a time).
    let changing = NSLockLite()
}
