import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import DiffEdit

/// diffedit — text-guided image and video editing with diffusion models (command-line front end).
let commands: [(String, String)] = [
    ("generate", "text to image"),
    ("edit", "edit an image (sdedit, ddim, p2p, instruct)"),
    ("video", "edit a video's frames consistently"),
    ("tokenize", "print the token ids of a prompt"),
    ("info", "describe a checkpoint, or (--provenance) an image's provenance record and watermark"),
    ("watermark", "embed the invisible watermark in an image"),
    ("bench", "time the SD 1.5 UNet forward"),
]

func topHelp() -> String {
    var s = "usage: diffedit COMMAND [options]   (diffedit COMMAND --help for its options)\n\ncommands:\n"
    for (c, h) in commands { s += "  " + TextUtil.padded(c, to: 10) + h + "\n" }
    s += "\n--model is optional everywhere: without it the embedded toy models are used\n(models/toy-instruct for edit, models/toy-sd for generate and the sdedit/ddim/p2p methods).\n"
    return s
}

func fail(_ message: String, status: Int32) -> Never {
    StdIO.err(message + "\n")
    exit(status)
}

let argv = ByteArguments.decode()   // bytes: a non-UTF-8 path is reached through a link, shown escaped
guard let command = argv.first else { fail(topHelp(), status: 2) }
let rest = Array(argv.dropFirst())

do {
    switch command {
    case "generate": try GenerateCommand.run(arguments: rest)
    case "tokenize": try TokenizeCommand.run(arguments: rest)
    case "info": try InfoCommand.run(arguments: rest)
    case "watermark": try WatermarkCommand.run(arguments: rest)
    case "bench": try BenchCommand.run(arguments: rest)
    case "edit":
        let status = try EditCommand.run(arguments: rest)
        if status != 0 { exit(status) }
    case "video":
        let status = try VideoCommand.run(arguments: rest)
        if status != 0 { exit(status) }
    case "help", "--help", "-h": print(topHelp(), terminator: "")
    case "version", "--version": print("diffedit 0.1.0")
    default: fail("diffedit: unknown command \"\(command)\"\n\n" + topHelp(), status: 2)
    }
} catch CLIError.help(let text) {
    print(text, terminator: "")
} catch CLIError.usage(let cmd, let message) {
    fail("diffedit \(cmd): \(message)\nRun 'diffedit \(cmd) --help' for the options.", status: 2)
} catch let e as DiffEditError {
    fail("diffedit \(command): error: \(e.message)", status: 1)
} catch {
    fail("diffedit \(command): error: \(error)", status: 1)
}
