import CarteiraTestSupport
import Foundation
import Testing

/// Runs a program on a pseudo-terminal of ROWS × COLUMNS: `steps` is a JSON
/// list of `["expect", text]` (wait, with a deadline, for text after the
/// previous match) and `["send", text]`. Prints the transcript, then
/// `EXIT <status>` on standard error; exits 1 when an expectation timed out.
private let sizedPtyDriver = #"""
    import fcntl, json, os, pty, select, signal, struct, sys, termios, time
    rows, columns, steps, argv = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4:]
    pid, fd = pty.fork()
    if pid == 0:
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

/// `program ARGS` on a pseudo-terminal of `rows` rows, with `environment`
/// added; the transcript and the driver's standard error.
private func onSizedTerminal(
    rows: Int, _ program: String, _ arguments: [String], steps: [[String]] = [], environment: [String: String]
) async throws -> (transcript: String, errors: String) {
    let stepsJSON = String(decoding: try JSONSerialization.data(withJSONObject: steps), as: UTF8.self)
    let path = productsDirectory.appendingPathComponent(program).path
    let child = try ChildProcess(
        "/usr/bin/env", ["python3", "-c", sizedPtyDriver, String(rows), "100", stepsJSON, path] + arguments,
        environment: environment)
    _ = await child.exitStatus(within: 60)
    _ = await eventually(within: 2) { child.output.isClosed && child.errors.isClosed }
    return (child.output.text, child.errors.text)
}

@Suite("The pager in the real programs, on a pseudo-terminal", .timeLimit(.minutes(2)))
struct PagerProcessTests {
    @Test(
        "carteira history: through $PAGER on a terminal when longer than the screen, never on a pipe or with PAGER=''")
    func clientHistory() async throws {
        let peers = try await TwoPeers.start()
        for amount in ["1", "2", "3", "4"] {
            let sent = try await peers.run(["send", peers.bobKey, amount], as: "alice")
            try #require(sent.status == 0, "\(sent.errors)")
        }
        let paged = peers.directory + "/paged"
        let pager = ["PAGER": "cat >> '\(paged)'"]
        let arguments = ["--server", "127.0.0.1:\(peers.port)", "--state-dir", peers.state, "--machine", "alice"]

        // On a pipe: printed as it is, even with PAGER set.
        let piped = try ChildProcess("carteira", arguments + ["history"], environment: pager)
        piped.closeInput()
        #expect(await piped.exitStatus() == 0)
        _ = await eventually(within: 2) { piped.output.isClosed }
        let statement = piped.output.text
        #expect(statement.split(separator: "\n").count == 6, "\(statement)")
        #expect(!FileManager.default.fileExists(atPath: paged))

        // On a terminal of 6 rows the 6 lines go whole through the pager.
        let run = try await onSizedTerminal(rows: 6, "carteira", arguments + ["history"], environment: pager)
        #expect(run.errors.contains("EXIT 0"), "\(run.errors)\n\(run.transcript)")
        #expect(try String(contentsOfFile: paged, encoding: .utf8) == statement)
        #expect(!run.transcript.contains("received from bob") && !run.transcript.contains("sent to bob"))

        // A taller terminal, or PAGER='': printed on the terminal, no pager.
        for (rows, environment) in [(40, pager), (6, ["PAGER": ""])] {
            let direct = try await onSizedTerminal(
                rows: rows, "carteira", arguments + ["history"], environment: environment)
            #expect(direct.errors.contains("EXIT 0"), "\(direct.errors)")
            #expect(direct.transcript.contains("sent to bob"), "\(rows) rows: \(direct.transcript)")
        }
        #expect(try String(contentsOfFile: paged, encoding: .utf8) == statement, "paged once only")
        await peers.stop()
    }

    @Test("the server's console pages help on a short terminal, then prompts again and quits")
    func consoleHelp() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let paged = directory + "/paged"
        // The same help, through a pipe: printed as it is.
        let piped = try ChildProcess(
            "carteira-server", ["--console", "--port", "0", "--journal", directory + "/piped"],
            environment: ["PAGER": "cat >> '\(paged)'"])
        piped.write("help\n")
        piped.closeInput()
        #expect(await piped.waitForOutput { $0.contains("as two words)\n") })
        piped.signal(SIGTERM)
        _ = await piped.exitStatus()
        let help = piped.output.text
        #expect(!FileManager.default.fileExists(atPath: paged))

        let run = try await onSizedTerminal(
            rows: 10, "carteira-server", ["--console", "--port", "0", "--journal", directory + "/journal"],
            steps: [
                ["expect", "carteira> "], ["send", "help\r"], ["expect", "carteira> "], ["send", "quit\r"],
            ],
            environment: ["PAGER": "cat >> '\(paged)'", "CARTEIRA_HISTORY": directory + "/history"])
        #expect(run.errors.contains("EXIT 0"), "\(run.errors)\n\(run.transcript)")
        #expect(try String(contentsOfFile: paged, encoding: .utf8) == help)
        #expect(!run.transcript.contains("as two words)"))
    }
}
