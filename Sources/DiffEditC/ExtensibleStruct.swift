import DiffEdit

/// Reads a caller's extensible struct (first field `uint32_t struct_size`) by the rules of
/// include/diffedit.h — the Linux kernel's copy_struct_from_user rule:
/// - struct_size 0 is an invalid argument;
/// - a struct_size smaller than the library's struct is read up to struct_size when it ends on a
///   field boundary (an older caller; the rest keeps its default), otherwise it is invalid;
/// - a larger struct_size is accepted only when bytes [sizeof, struct_size) are all zero, else
///   the call is unsupported (a newer caller set a field this library does not know).
enum ExtensibleStruct {
    /// `fieldEnds`: the offsets at which a field of T ends (an older struct may stop there).
    static func read<T>(_ raw: UnsafeRawPointer, defaults: T, cName: String, argName: String,
                        fieldEnds: [Int]) throws -> T {
        let size = Int(raw.load(as: UInt32.self))
        let known = MemoryLayout<T>.size
        guard size != 0 else {
            throw DiffEditError.invalidArgument("\(argName)->struct_size is 0 (set it to sizeof(\(cName)), e.g. with the _default function)")
        }
        if size < known && !fieldEnds.contains(size) {
            throw DiffEditError.invalidArgument("\(argName)->struct_size (\(size)) is smaller than sizeof(\(cName)) (\(known)) and does not end on a field boundary")
        }
        if size > known {
            let tail = raw.assumingMemoryBound(to: UInt8.self)
            for i in known..<size where tail[i] != 0 {
                throw DiffEditError.unsupported("\(argName)->struct_size (\(size)) is larger than this library's sizeof(\(cName)) (\(known)) and byte \(i) of the unknown tail is not zero: a newer field is set that this library (ABI \(ABIInfo.abiVersion)) does not support")
            }
        }
        var out = defaults
        withUnsafeMutableBytes(of: &out) { dst in
            dst.baseAddress!.copyMemory(from: raw, byteCount: min(size, known))
        }
        return out
    }
}
