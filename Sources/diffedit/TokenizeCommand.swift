import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import DiffEdit

/// `diffedit tokenize TEXT`: the 77 token ids the text encoder sees, as one JSON array.
enum TokenizeCommand {
    static let parser = ArgParser(
        command: "tokenize",
        usage: "[--model PATH] TEXT",
        summary: "Prints the token ids of TEXT (start, BPE ids, end, padding to 77) as one JSON array, as transformers' CLIPTokenizer(padding=\"max_length\", truncation=True).",
        options: [CommonOptions.model, CommonOptions.configFrom],
        positionalHelp: "TEXT: the prompt (several words are joined with spaces; use -- before text that starts with -)")

    static func run(arguments: [String]) throws {
        let p = try parser.parse(arguments)
        guard !p.positionals.isEmpty else { throw CLIError.usage("tokenize", "missing TEXT") }
        let text = p.positionals.joined(separator: " ")
        let path = try p.string("model").flatMap { $0.isEmpty ? nil : $0 } ?? DefaultModel.resolve()
        let ck = try CheckpointLoader.load(path: path, configFrom: p.string("config-from"))
        let tok: CLIPTokenizer
        if let v = ck.tokenizerVocabPath, let m = ck.tokenizerMergesPath {
            tok = try CLIPTokenizer(vocabPath: v, mergesPath: m, padToken: ck.padToken)
        } else {
            tok = try CLIPTokenizer.embedded(padToken: ck.padToken)
        }
        let ids = tok.encode(text, maxLength: ck.textConfig.max_position_embeddings)
        print("[" + ids.map { String($0) }.joined(separator: ", ") + "]")
    }
}
