import DiffEdit

/// In-memory random weights of the right names and shapes (benchmarks).
extension AutoencoderKL {
    public static func randomWeights(config: VAEConfig, seed: UInt64) -> DictionaryWeightSource {
        let src = RandomWeightSource(seed: seed)
        _ = try? AutoencoderKL(config: config, weights: src, backend: Backend.cpu)
        return DictionaryWeightSource(origin: "random VAE weights (seed \(seed))", tensors: src.tensors)
    }
}
