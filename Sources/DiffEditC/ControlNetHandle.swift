import DiffEdit

/// The object behind `diff_edit_controlnet *`: a loaded ControlNet and the engine (model) it was loaded for.
/// Immutable; retained by the caller's handle and by every call that uses it (a ControlSpec).
final class ControlNetHandle: @unchecked Sendable {
    let engine: EditEngine
    let net: ControlNetModel

    init(engine: EditEngine, net: ControlNetModel) { self.engine = engine; self.net = net }
}
