import CDiffEditABI
import DiffEdit

/// A checked `diff_edit_lora` array (diff_edit_model_set_loras): every element's struct_size equals the
/// first one's, which is the stride; paths UTF-8; scales finite.
enum LoRARequest {
    static var cDefaults: diff_edit_lora {
        var l = diff_edit_lora()
        l.struct_size = UInt32(MemoryLayout<diff_edit_lora>.size)
        l.scale = 1
        return l
    }

    static var fieldEnds: [Int] {
        typealias L = diff_edit_lora
        let ends: [Int?] = [
            MemoryLayout<L>.offset(of: \.struct_size).map { $0 + 4 },
            MemoryLayout<L>.offset(of: \.path).map { $0 + MemoryLayout<UnsafeRawPointer?>.size },
            MemoryLayout<L>.offset(of: \.scale).map { $0 + 4 },
        ]
        return ends.compactMap { $0 }
    }

    static func specs(_ raw: UnsafePointer<diff_edit_lora>?, count n: UInt32) throws -> [LoRASpec] {
        guard n > 0 else { return [] }
        guard let raw = raw else { throw DiffEditError.invalidArgument("loras is NULL with n = \(n)") }
        let base = UnsafeRawPointer(raw)
        let stride = Int(base.load(as: UInt32.self))
        var out: [LoRASpec] = []
        for i in 0..<Int(n) {
            let p = base + i * stride
            let size = Int(p.load(as: UInt32.self))
            guard size == stride || i == 0 else {
                throw DiffEditError.invalidArgument("loras[\(i)].struct_size (\(size)) differs from loras[0].struct_size (\(stride)), the array's stride")
            }
            let l = try ExtensibleStruct.read(p, defaults: cDefaults, cName: "diff_edit_lora", argName: "loras[\(i)]",
                                              fieldEnds: fieldEnds)
            guard let cp = l.path else { throw DiffEditError.invalidArgument("loras[\(i)].path is NULL") }
            guard let path = String(validatingCString: cp) else {
                throw DiffEditError.invalidArgument("loras[\(i)].path is not valid UTF-8")
            }
            guard !path.isEmpty else { throw DiffEditError.invalidArgument("loras[\(i)].path is empty") }
            guard l.scale.isFinite else {
                throw DiffEditError.invalidArgument("loras[\(i)].scale (\(l.scale)) is not finite")
            }
            out.append(LoRASpec(path: path, scale: l.scale))
        }
        return out
    }
}
