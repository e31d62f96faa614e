import DiffEdit

/// In-memory random weights of the right names and shapes (benchmarks).
extension UNet2DConditionModel {
    /// Every tensor the UNet of `config` loads, random (see RandomWeightSource). An invalid config gives
    /// the tensors made before the problem; loading the model from them then reports it.
    public static func randomWeights(config: UNetConfig, seed: UInt64) -> DictionaryWeightSource {
        let src = RandomWeightSource(seed: seed)
        _ = try? UNet2DConditionModel(config: config, weights: src, backend: Backend.cpu)
        return DictionaryWeightSource(origin: "random UNet weights (seed \(seed))", tensors: src.tensors)
    }
}
