import DiffEdit

/// In-memory random weights of the right names and shapes (benchmarks).
extension CLIPTextModel {
    public static func randomWeights(config: CLIPTextConfig, seed: UInt64) -> DictionaryWeightSource {
        let src = RandomWeightSource(seed: seed)
        _ = try? CLIPTextModel(config: config, weights: src, backend: Backend.cpu)
        return DictionaryWeightSource(origin: "random text encoder weights (seed \(seed))", tensors: src.tensors)
    }
}
