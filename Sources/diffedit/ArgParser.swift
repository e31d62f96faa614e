/// A small command-line parser (no packages): `--name value`, `--name=value`, boolean `--flag`,
/// positionals, `--` ends options. Unknown options, missing values and bad numbers are errors that
/// name the option.
struct ArgParser {
    struct Option {
        let name: String          // without dashes
        let value: String?        // value placeholder ("PATH"); nil for a boolean flag
        let help: String
    }

    let command: String
    let usage: String
    let summary: String
    let options: [Option]
    let positionalHelp: String?

    init(command: String, usage: String, summary: String, options: [Option], positionalHelp: String? = nil) {
        self.command = command; self.usage = usage; self.summary = summary
        self.options = options + [Option(name: "help", value: nil, help: "show this help")]
        self.positionalHelp = positionalHelp
    }

    var helpText: String {
        var s = "usage: diffedit \(command) \(usage)\n\n\(summary)\n\noptions:\n"
        let width = options.map { ("--" + $0.name + ($0.value.map { " " + $0 } ?? "")).count }.max() ?? 0
        for o in options {
            let left = "--" + o.name + (o.value.map { " " + $0 } ?? "")
            s += "  " + left + String(repeating: " ", count: max(1, width - left.count + 2)) + o.help + "\n"
        }
        if let p = positionalHelp { s += "\n\(p)\n" }
        return s
    }

    /// The parsed arguments; `.help` when --help was given.
    func parse(_ args: [String]) throws -> Parsed {
        var values: [String: String] = [:]
        var sequence: [(name: String, value: String)] = []
        var flags: Set<String> = []
        var positionals: [String] = []
        var i = 0
        var onlyPositionals = false
        while i < args.count {
            let a = args[i]
            i += 1
            if onlyPositionals || !a.hasPrefix("--") || a == "-" {
                if a.hasPrefix("-") && a.count > 1 && !onlyPositionals && Double(a) == nil {
                    throw CLIError.usage(command, "unknown option \(a)")
                }
                positionals.append(a)
                continue
            }
            if a == "--" { onlyPositionals = true; continue }
            var name = String(a.dropFirst(2))
            var inline: String? = nil
            if let eq = name.firstIndex(of: "=") {
                inline = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            guard let opt = options.first(where: { $0.name == name }) else {
                throw CLIError.usage(command, "unknown option --\(name)")
            }
            if opt.value == nil {
                if inline != nil { throw CLIError.usage(command, "option --\(name) takes no value") }
                flags.insert(name)
                continue
            }
            if let v = inline {
                values[name] = v
            } else {
                guard i < args.count else { throw CLIError.usage(command, "option --\(name) needs a value (\(opt.value!))") }
                values[name] = args[i]
                i += 1
            }
            sequence.append((name, values[name]!))
        }
        if flags.contains("help") { throw CLIError.help(helpText) }
        return Parsed(command: command, values: values, flags: flags, positionals: positionals, sequence: sequence)
    }

    struct Parsed {
        let command: String
        let values: [String: String]
        let flags: Set<String>
        let positionals: [String]
        /// Every option value in command-line order (repeatable options: `all`).
        var sequence: [(name: String, value: String)] = []

        /// The values of the options in `names`, in command-line order (a repeated option gives each of its values).
        func all(_ names: Set<String>) -> [(name: String, value: String)] { sequence.filter { names.contains($0.name) } }

        func string(_ name: String) -> String? { values[name] }
        func flag(_ name: String) -> Bool { flags.contains(name) }

        /// A `--NAME` / `--no-NAME` pair: true, false, or nil when neither is given; both is a usage error.
        func toggle(_ name: String) throws -> Bool? {
            let on = flag(name), off = flag("no-" + name)
            if on && off { throw CLIError.usage(command, "--\(name) and --no-\(name) contradict each other") }
            return on ? true : (off ? false : nil)
        }

        func required(_ name: String) throws -> String {
            guard let v = values[name] else { throw CLIError.usage(command, "missing required option --\(name)") }
            return v
        }

        func int(_ name: String) throws -> Int? {
            guard let v = values[name] else { return nil }
            guard let n = Int(v) else { throw CLIError.usage(command, "--\(name): \"\(v)\" is not an integer") }
            return n
        }

        func uint64(_ name: String) throws -> UInt64? {
            guard let v = values[name] else { return nil }
            if let n = UInt64(v) { return n }
            if let n = Int64(v), n < 0 { return UInt64(bitPattern: n) }
            throw CLIError.usage(command, "--\(name): \"\(v)\" is not an integer seed")
        }

        func float(_ name: String) throws -> Float? {
            guard let v = values[name] else { return nil }
            // Float("nan") / Float("inf") parse: the library rejects them with a message naming the field.
            guard let n = Float(v) else { throw CLIError.usage(command, "--\(name): \"\(v)\" is not a number") }
            return n
        }
    }
}
