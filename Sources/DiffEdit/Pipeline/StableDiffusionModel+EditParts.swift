/// The view of a loaded model that the editing methods use (`ImageEditor(parts:)`).
extension StableDiffusionModel {
    public var editParts: EditModelParts {
        var p = EditModelParts(unet: unet, vae: vae, schedulerConfig: schedulerConfig, tokenizer: tokenizer,
                       encodePrompt: { [unowned self] text in try self.encodePrompt(text) },
                       randomNormal: { shape, seed in var r = RNG(seed: seed); return r.normal(shape) },
                       backend: backend, editDefaults: editDefaults,
                       checkWorkingSet: { [unowned self] w, h, items, planes, advice in
                           try self.checkWorkingSet(width: w, height: h, unetItems: items, sizeAdvice: advice, inputPlanes: planes)
                       },
                       weightsGeneration: { [unowned self] in self.weightsGeneration })
        if isXL { p.encodeCondition = { [unowned self] text in try self.encodeCondition(text) } }
        p.cosxlEdit = isCosXLEdit
        return p
    }
}
