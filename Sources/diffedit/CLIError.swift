/// Command-line problems (as opposed to library errors, which are `DiffEditError`).
enum CLIError: Error {
    /// A usage mistake in `command`: printed with a pointer to --help, exit status 2.
    case usage(String, String)
    /// --help was asked for: the text goes to stdout, exit status 0.
    case help(String)
}
