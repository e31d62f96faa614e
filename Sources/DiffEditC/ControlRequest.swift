import CDiffEditABI
import DiffEdit

/// A checked `diff_edit_params.controls` array: every entry read under the extensible-struct rule (entries
/// struct_size of entry 0 apart), its net, its input (preprocessor or a control image read now) and numbers.
struct ControlRequest {
    let specs: [ControlSpec]
    /// The engine each entry's net was loaded for (checked against the context's: `requireEngine`).
    let engines: [ObjectIdentifier]
    /// The control images, for the size check against the input.
    let images: [(Int, CheckedBuffer)]

    static var cDefaults: diff_edit_control {
        var c = diff_edit_control()
        c.struct_size = UInt32(MemoryLayout<diff_edit_control>.size)
        c.scale = 1; c.start = 0; c.end = 1
        return c
    }

    static var fieldEnds: [Int] {
        typealias C = diff_edit_control
        let p = MemoryLayout<UnsafeRawPointer?>.size
        let ends: [Int?] = [
            MemoryLayout<C>.offset(of: \.struct_size).map { $0 + 4 },
            MemoryLayout<C>.offset(of: \.net).map { $0 + p },
            MemoryLayout<C>.offset(of: \.preprocessor).map { $0 + p },
            MemoryLayout<C>.offset(of: \.image).map { $0 + p },
            MemoryLayout<C>.offset(of: \.scale).map { $0 + 4 },
            MemoryLayout<C>.offset(of: \.start).map { $0 + 4 },
            MemoryLayout<C>.offset(of: \.end).map { $0 + 4 },
        ]
        return ends.compactMap { $0 }
    }

    init(count: UInt32, array: UnsafePointer<diff_edit_control>?) throws {
        guard count > 0 else { specs = []; engines = []; images = []; return }
        guard count <= 64 else { throw DiffEditError.invalidArgument("params->n_controls (\(count)) is above 64") }
        guard let array else { throw DiffEditError.invalidArgument("params->controls is NULL but params->n_controls is \(count)") }
        let raw = UnsafeRawPointer(array)
        let stride = Int(raw.load(as: UInt32.self))
        var specs: [ControlSpec] = [], engines: [ObjectIdentifier] = [], images: [(Int, CheckedBuffer)] = []
        for i in 0..<Int(count) {
            let name = "params->controls[\(i)]"
            let er = raw + i * max(stride, 1)
            guard i == 0 || Int(er.load(as: UInt32.self)) == stride else {
                throw DiffEditError.invalidArgument("\(name).struct_size (\(er.load(as: UInt32.self))) differs from params->controls[0].struct_size (\(stride))")
            }
            let c = try ExtensibleStruct.read(er, defaults: Self.cDefaults, cName: "diff_edit_control", argName: name,
                                              fieldEnds: Self.fieldEnds)
            guard let netPtr = c.net else { throw DiffEditError.invalidArgument("\(name).net is NULL") }
            let h = Unmanaged<ControlNetHandle>.fromOpaque(UnsafeRawPointer(netPtr)).takeUnretainedValue()
            let source: ControlSource
            switch (c.preprocessor, c.image) {
            case (nil, nil): throw DiffEditError.invalidArgument("\(name): set preprocessor or image")
            case (_?, _?): throw DiffEditError.invalidArgument("\(name): set preprocessor or image, not both")
            case (let p?, nil):
                guard let s = String(validatingCString: p) else { throw DiffEditError.invalidArgument("\(name).preprocessor is not valid UTF-8") }
                source = try ControlSource.preprocessor(s, field: "\(name).preprocessor")
            case (nil, let img?):
                let b = try CheckedBuffer(img, name: "\(name).image")
                images.append((i, b))
                source = .image(try PixelConverter.readRGB(b).0)
            }
            let spec = ControlSpec(net: h.net, source: source, scale: c.scale, start: c.start, end: c.end)
            do { try spec.validate(name) } catch let e as DiffEditError {
                // "params->controls[0] scale: ..." -> "params->controls[0].scale: ..."
                let m = e.message
                throw e.withMessage(m.hasPrefix(name + " ") ? name + "." + m.dropFirst(name.count + 1) : m)
            }
            specs.append(spec)
            engines.append(ObjectIdentifier(h.engine))
        }
        self.specs = specs; self.engines = engines; self.images = images
    }

    /// Throws unless every net was loaded for `engine` (the context's model).
    func requireEngine(_ engine: EditEngine) throws {
        for (i, e) in engines.enumerated() where e != ObjectIdentifier(engine) {
            throw DiffEditError.invalidArgument("params->controls[\(i)].net was loaded for another model than the context's (diff_edit_controlnet_load with the context's model)")
        }
    }

    /// Throws unless every control image has the size of `input`.
    func checkImages(against input: CheckedBuffer, inputName: String) throws {
        for (i, b) in images { try b.requireSize(of: input, name: "params->controls[\(i)].image", otherName: inputName) }
    }
}
