import CarteiraCore
import CarteiraTestSupport
import Foundation
import Testing

/// Where `swift build` put the package's executables: next to the test bundle.
let productsDirectory: URL = {
    let bundle = Bundle.main.bundleURL
    for candidate in [bundle, bundle.deletingLastPathComponent()] {
        if FileManager.default.fileExists(atPath: candidate.appendingPathComponent("carteira-server").path) {
            return candidate
        }
    }
    // Fallback: the package's default build folder.
    return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".build/debug")
}()

/// Collects everything a pipe delivers, from a background handler.
final class OutputCollector: Sendable {
    let pipe = Pipe()
    private let data = Locked(Data())
    private let closed = Locked(false)

    init() {
        pipe.fileHandleForReading.readabilityHandler = { [self] handle in
            let chunk = handle.availableData
            if chunk.isEmpty {
                handle.readabilityHandler = nil
                closed.withLock { $0 = true }
            } else {
                data.withLock { $0.append(chunk) }
            }
        }
    }

    var text: String { data.withLock { String(decoding: $0, as: UTF8.self) } }
    var isClosed: Bool { closed.withLock { $0 } }
}

/// A program of the package run as a child process with piped standard streams.
final class ChildProcess: Sendable {
    let process: Process
    let output = OutputCollector()
    let errors = OutputCollector()
    let input = Pipe()

    init(_ program: String, _ arguments: [String], environment: [String: String] = [:], directory: String? = nil)
        throws
    {
        process = Process()
        // A program of the package by name, or any program by absolute path.
        process.executableURL =
            program.hasPrefix("/") ? URL(fileURLWithPath: program) : productsDirectory.appendingPathComponent(program)
        process.arguments = arguments
        var merged = ProcessInfo.processInfo.environment
        for (key, value) in environment { merged[key] = value }
        process.environment = merged
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        process.standardOutput = output.pipe
        process.standardError = errors.pipe
        process.standardInput = input
        try process.run()
    }

    func write(_ text: String) {
        input.fileHandleForWriting.write(Data(text.utf8))
    }

    func closeInput() {
        try? input.fileHandleForWriting.close()
    }

    func signal(_ signal: Int32) {
        kill(process.processIdentifier, signal)
    }

    /// Waits for the exit (with a deadline) and returns the status.
    func exitStatus(within seconds: Double = 20) async -> Int32? {
        let exited = await eventually(within: seconds) { !process.isRunning }
        guard exited else {
            process.terminate()
            return nil
        }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Waits until standard output holds a line matching `predicate`.
    func waitForOutput(within seconds: Double = 20, _ predicate: (String) -> Bool) async -> Bool {
        await eventually(within: seconds) { predicate(output.text) }
    }

    /// Waits until standard error (the log) holds a line containing
    /// `marker` and returns that line, or nil at the deadline.
    func loggedLine(containing marker: String, within seconds: Double = 20) async -> Substring? {
        let found = { [errors] in errors.text.split(separator: "\n").first { $0.contains(marker) } }
        _ = await eventually(within: seconds) { found() != nil }
        return found()
    }
}

/// Runs `program ARGS` (a product of the package, or an absolute path) to its
/// end with `input`, if any, on its standard input: its exit status (nil if
/// it outlived the deadline) and everything it printed.
func runToEnd(
    _ program: String, _ arguments: [String], input: String? = nil, environment: [String: String] = [:]
) async throws -> (status: Int32?, output: String, errors: String) {
    let child = try ChildProcess(program, arguments, environment: environment)
    if let input { child.write(input) }
    child.closeInput()
    let status = await child.exitStatus()
    _ = await eventually(within: 5) { child.output.isClosed && child.errors.isClosed }
    return (status, child.output.text, child.errors.text)
}

/// A fresh folder under the temporary directory.
func makeTemporaryDirectory() throws -> String {
    try TemporaryDirectory(prefix: "carteira-e2e").path
}

/// `carteira-server` started on port 0 with a journal in `journal`.
final class ServerProcess: Sendable {
    let child: ChildProcess
    let port: Int

    init(journal: String, port: Int = 0, extra: [String] = ["--no-console"]) async throws {
        child = try ChildProcess("carteira-server", ["--port", String(port), "--journal", journal] + extra)
        // With --console the line is on standard error (stdout is the console's).
        let started = await eventually(within: 20) { [child] in
            child.output.text.contains("listening on") || child.errors.text.contains("listening on")
        }
        try #require(started, "server did not start: \(child.errors.text)")
        let text = child.output.text + "\n" + child.errors.text
        let portText = try #require(
            text.split(separator: "\n").first { $0.contains("listening on") }?
                .split(separator: ":").dropFirst().first?.split(separator: " ").first)
        self.port = try #require(Int(portText))
    }

    /// SIGTERM, then the exit status.
    func stop() async -> Int32? {
        child.signal(SIGTERM)
        return await child.exitStatus()
    }
}
