#if canImport(Glibc)
import Glibc
#endif
import DiffEdit

/// A child process run through `/usr/bin/env NAME ARGS...` (PATH lookup, as Foundation's Process with
/// executableURL /usr/bin/env), with optional pipes for stdin/stdout/stderr. posix_spawn, so that the
/// CLI needs no full Foundation (Process/Pipe/FileHandle pull in ICU when linked statically).
final class Subprocess {
    enum Stream { case inherit, null, pipe }

    private(set) var pid: pid_t = 0
    private(set) var stdinFD: Int32 = -1     // parent's end for writing, when stdin is .pipe
    private(set) var stdoutFD: Int32 = -1    // parent's end for reading, when stdout is .pipe
    private(set) var stderrFD: Int32 = -1
    private var status: Int32? = nil

    init(_ args: [String], stdin: Stream = .inherit, stdout: Stream = .inherit, stderr: Stream = .inherit) throws {
        var fa = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fa)
        defer { posix_spawn_file_actions_destroy(&fa) }
        var childEnds: [Int32] = []
        var parentEnds: [Int32] = []
        func setup(_ s: Stream, _ target: Int32, childReads: Bool) throws -> Int32 {
            switch s {
            case .inherit: return -1
            case .null:
                posix_spawn_file_actions_addopen(&fa, target, "/dev/null", childReads ? O_RDONLY : O_WRONLY, 0)
                return -1
            case .pipe:
                var fds: [Int32] = [-1, -1]
                guard pipe(&fds) == 0 else { throw DiffEditError.io("pipe: \(String(cString: strerror(errno)))") }
                let (child, parent) = childReads ? (fds[0], fds[1]) : (fds[1], fds[0])
                _ = fcntl(parent, F_SETFD, FD_CLOEXEC)
                posix_spawn_file_actions_adddup2(&fa, child, target)
                posix_spawn_file_actions_addclose(&fa, child)
                childEnds.append(child); parentEnds.append(parent)
                return parent
            }
        }
        do {
            stdinFD = try setup(stdin, 0, childReads: true)
            stdoutFD = try setup(stdout, 1, childReads: false)
            stderrFD = try setup(stderr, 2, childReads: false)
        } catch {
            for fd in childEnds + parentEnds { Glibc.close(fd) }
            throw error
        }
        if stdinFD >= 0 { signal(SIGPIPE, SIG_IGN) }   // a child that exits early must not kill us on write
        let argv = ["/usr/bin/env"] + args
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
        cargs.append(nil)
        defer { for p in cargs { free(p) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, "/usr/bin/env", &fa, nil, cargs, environ)
        for fd in childEnds { Glibc.close(fd) }
        guard rc == 0 else {
            for fd in parentEnds { Glibc.close(fd) }
            stdinFD = -1; stdoutFD = -1; stderrFD = -1
            throw DiffEditError.io("cannot start /usr/bin/env \(args.first ?? ""): \(String(cString: strerror(rc)))")
        }
        pid = child
    }

    deinit {
        closeStdin()
        if stdoutFD >= 0 { Glibc.close(stdoutFD) }
        if stderrFD >= 0 { Glibc.close(stderrFD) }
    }

    /// Still running (not yet reaped).
    var isRunning: Bool {
        if status != nil { return false }
        var st: Int32 = 0
        let r = waitpid(pid, &st, WNOHANG)
        if r == pid { status = Subprocess.exitCode(st); return false }
        return r == 0
    }

    /// Waits for the child; its exit status (128 + signal when killed by one).
    @discardableResult func wait() -> Int32 {
        if let s = status { return s }
        var st: Int32 = 0
        while waitpid(pid, &st, 0) < 0 && errno == EINTR {}
        let s = Subprocess.exitCode(st)
        status = s
        return s
    }

    static func exitCode(_ st: Int32) -> Int32 {
        let sig = st & 0x7f
        return sig == 0 ? (st >> 8) & 0xff : 128 + sig
    }

    func terminate() { if isRunning { kill(pid, SIGTERM) } }

    func closeStdin() {
        if stdinFD >= 0 { Glibc.close(stdinFD); stdinFD = -1 }
    }

    /// Writes all bytes to the child's stdin.
    func write(_ bytes: [UInt8]) throws {
        var off = 0
        try bytes.withUnsafeBytes { raw in
            while off < raw.count {
                let n = Glibc.write(stdinFD, raw.baseAddress! + off, raw.count - off)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw DiffEditError.io("write to child process: \(String(cString: strerror(errno)))")
                }
                off += n
            }
        }
    }

    /// Up to `count` bytes from `fd` (fewer only at the end of the stream).
    static func read(_ fd: Int32, count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var got = 0
        out.withUnsafeMutableBytes { raw in
            while got < count {
                let n = Glibc.read(fd, raw.baseAddress! + got, count - got)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                got += n
            }
        }
        out.removeLast(count - got)
        return out
    }

    /// Everything left on `fd`.
    static func readToEnd(_ fd: Int32) -> [UInt8] {
        var all: [UInt8] = []
        while true {
            let chunk = read(fd, count: 65536)
            all += chunk
            if chunk.count < 65536 { return all }
        }
    }
}
