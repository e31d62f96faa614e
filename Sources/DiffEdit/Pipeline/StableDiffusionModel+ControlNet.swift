extension StableDiffusionModel {
    /// Loads a ControlNet for this model (a diffusers ControlNetModel folder or a single file, `ControlNetCheckpoint`)
    /// on the model's backend, with the model's UNet config for what a single file's shapes cannot tell; a
    /// ControlNet made for another base is refused (`.model`, naming the tensor that does not fit).
    public func loadControlNet(path: String) throws -> ControlNetModel {
        let (config, weights) = try ControlNetCheckpoint.open(path: path, base: unetConfig)
        try ControlNetModel.checkFits(config, origin: weights.origin, storedName: { n in
            weights.refs[n].map { $0.name == n ? n : "\($0.name) (\(n))" } ?? n
        }, unet: unetConfig, unetOrigin: origin)
        return try ControlNetModel(config: config, weights: weights, backend: backend)
    }
}
