import CarteiraTestSupport
import Foundation

/// Runs a program on a pseudo-terminal of ROWS × COLUMNS (the pty's own
/// size when both are 0): `steps` is a JSON list of `["expect", text]` (wait,
/// with a deadline, for text after the previous match) and `["send", text]`
/// (type it). Prints the transcript, then `EXIT <status>` on standard error;
/// exits 1 when an expectation timed out.
private let ptyDriver = #"""
    import fcntl, json, os, pty, select, signal, struct, sys, termios, time
    rows, columns, steps, argv = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4:]
    pid, fd = pty.fork()
    if pid == 0:
        if rows and columns:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        os.environ["TERM"] = "dumb"
        os.execv(argv[0], argv)
    out, pos = b"", 0
    def read_some(timeout):
        global out
        r, _, _ = select.select([fd], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(fd, 4096)
        except OSError:
            return False
        out += data
        return bool(data)
    def expect(text, seconds=20):
        global pos
        deadline = time.time() + seconds
        while True:
            i = out.find(text.encode(), pos)
            if i >= 0:
                pos = i + len(text.encode())
                return True
            if time.time() >= deadline:
                return False
            read_some(0.2)
    for kind, text in steps:
        if kind == "expect":
            if not expect(text):
                sys.stdout.write(out.decode(errors="replace"))
                sys.stderr.write("TIMEOUT waiting for: %r\n" % text)
                os.kill(pid, signal.SIGKILL)
                sys.exit(1)
        else:
            os.write(fd, text.encode())
    deadline, status = time.time() + 20, None
    while time.time() < deadline:
        read_some(0.1)
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(st)
            break
    while read_some(0.05):
        pass
    sys.stdout.write(out.decode(errors="replace"))
    sys.stderr.write("EXIT %s\n" % status)
    sys.exit(0 if status is not None else 1)
    """#

/// `program ARGS` (a product of this package) on a pseudo-terminal through
/// `steps`, with `environment` added: the transcript, the driver's standard
/// error (ending in `EXIT <status>`) and the driver's exit status.
func onPseudoTerminal(
    _ program: String, _ arguments: [String], steps: [[String]], rows: Int = 0, columns: Int = 0,
    environment: [String: String] = [:]
) async throws -> (transcript: String, errors: String, status: Int32?) {
    let stepsJSON = String(decoding: try JSONSerialization.data(withJSONObject: steps), as: UTF8.self)
    let path = productsDirectory.appendingPathComponent(program).path
    let child = try ChildProcess(
        "/usr/bin/env", ["python3", "-c", ptyDriver, String(rows), String(columns), stepsJSON, path] + arguments,
        environment: environment)
    let status = await child.exitStatus(within: 60)
    _ = await eventually(within: 2) { child.output.isClosed && child.errors.isClosed }
    return (child.output.text, child.errors.text, status)
}
