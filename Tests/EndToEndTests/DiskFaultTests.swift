import CarteiraJournal
import CarteiraTestSupport
import Foundation
import Testing

/// Runs a system tool (mount, umount, mkfs.ext4, e2fsck, findmnt) and
/// returns its status and output.
@discardableResult
private func tool(_ path: String, _ arguments: [String]) -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    do {
        try process.run()
    } catch {
        return (-1, "\(error)")
    }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// A file system mounted for one test, unmounted (lazily, should a server
/// still hold it) by `unmount()`.
private struct Mounted {
    let point: String

    /// A `tmpfs` of `size` (`mount -o size=`).
    static func tmpfs(size: String, at point: String) throws -> Mounted {
        try FileManager.default.createDirectory(atPath: point, withIntermediateDirectories: true)
        let result = tool("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=\(size)", "tmpfs", point])
        try #require(result.status == 0, "mount tmpfs: \(result.output)")
        return Mounted(point: point)
    }

    /// An ext4 image on a loop device that the kernel remounts read-only
    /// at the first error (`errors=remount-ro`), as it does a failing disk.
    static func ext4(image: String, at point: String) throws -> Mounted {
        try FileManager.default.createDirectory(atPath: point, withIntermediateDirectories: true)
        let result = tool("/usr/bin/mount", ["-o", "loop,errors=remount-ro", image, point])
        try #require(result.status == 0, "mount ext4 image: \(result.output)")
        return Mounted(point: point)
    }

    func unmount() {
        if tool("/usr/bin/umount", [point]).status != 0 { tool("/usr/bin/umount", ["-l", point]) }
    }

    /// Bytes free for an unprivileged writer.
    var freeBytes: Int {
        var status = statvfs()
        guard statvfs(point, &status) == 0 else { return 0 }
        return Int(status.f_bavail) * Int(status.f_frsize)
    }
}

/// Whether this machine lets the tests mount file systems: root in a
/// container that allows `mount` (CI does). Tried once.
private let mountRefusal: String? = {
    guard getuid() == 0 else { return "the disk-fault tests mount file systems and need root" }
    let point = FileManager.default.temporaryDirectory.appendingPathComponent("carteira-mount-probe-\(getpid())").path
    defer { try? FileManager.default.removeItem(atPath: point) }
    try? FileManager.default.createDirectory(atPath: point, withIntermediateDirectories: true)
    let result = tool("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", point])
    guard result.status == 0 else { return "mount refused here: \(result.output)" }
    tool("/usr/bin/umount", [point])
    return nil
}()

private let loopRefusal: String? = {
    if let mountRefusal { return mountRefusal }
    for program in ["/usr/sbin/mkfs.ext4", "/usr/sbin/e2fsck", "/usr/bin/findmnt"]
    where !FileManager.default.isExecutableFile(atPath: program) {
        return "\(program) is missing"
    }
    guard FileManager.default.fileExists(atPath: "/dev/loop-control") else { return "no loop devices here" }
    return nil
}()

/// Registers alice and bob; alice's token and bob's key.
private func registerPair(_ port: Int) throws -> (alice: LineSocket, token: String, bobKey: String) {
    let alice = try LineSocket(port: port)
    let bob = try LineSocket(port: port)
    let registered = try #require(alice.request("REGISTER|alice")).split(separator: "|")
    let bobFields = try #require(bob.request("REGISTER|bob")).split(separator: "|")
    try #require(registered.count == 5 && bobFields.count == 5)
    return (alice, String(registered[2]), String(bobFields[3]))
}

/// The transfer ids in a journal file.
private func journaledTransfers(_ journal: String) throws -> [String] {
    let text = try String(contentsOfFile: journal + "/" + Journal.fileName, encoding: .utf8)
    return text.split(separator: "\n").compactMap { line in
        guard line.contains(" type=transfer ") else { return nil }
        return line.split(separator: " ").first { $0.hasPrefix("tx=") }.map { String($0.dropFirst(3)) }
    }
}

/// After the journal failed: every further request is refused or finds the
/// connection closed; none is acknowledged.
private func expectNothingAcknowledged(_ socket: LineSocket, _ bobKey: String, _ tag: String) {
    for index in 0..<5 {
        guard let answer = socket.request("SEND|\(bobKey)|0,01|\(tag)-after-\(index)") else { return }
        #expect(answer.hasPrefix("ERR|unavailable|"), "acknowledged after the journal failed: \(answer)")
    }
}

/// Restarts on `journal` and checks it rebuilt exactly `acknowledged`:
/// the journal's transfers are those, and alice's balance says so.
private func expectRebuilt(_ journal: String, acknowledged: [String], token: String) async throws {
    let restarted = try await ServerProcess(journal: journal)
    #expect(try journaledTransfers(journal) == acknowledged)
    let again = try LineSocket(port: restarted.port)
    #expect(again.request("LOGIN|alice|\(token)")?.hasPrefix("OK|alice|") == true)
    #expect(again.request("BALANCE") == "OK|\(10_000 - acknowledged.count)")
    #expect(await restarted.stop() == 0)
}

@Suite("Real disk faults under the real server", .serialized, .timeLimit(.minutes(3)))
struct DiskFaultTests {
    @Test(
        "A full file system: unavailable, nothing acknowledged after, a non-zero exit; once space is freed a restart rebuilds exactly the acknowledged prefix",
        .enabled(if: mountRefusal == nil, "\(mountRefusal ?? "")"))
    func fullFileSystem() async throws {
        let base = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let disk = try Mounted.tmpfs(size: "1m", at: base + "/fs")
        defer { disk.unmount() }
        let journal = disk.point + "/journal"
        let server = try await ServerProcess(journal: journal)
        let (alice, token, bobKey) = try registerPair(server.port)

        // Leave room for about a hundred transfer lines, then pay one at a
        // time until a write fails.
        let filler = disk.point + "/filler"
        let room = 24 * 1024
        #expect(FileManager.default.createFile(atPath: filler, contents: Data(count: max(0, disk.freeBytes - room))))
        var acknowledged: [String] = []
        var refusal: String?
        for index in 0..<5_000 {
            let answer = try #require(alice.request("SEND|\(bobKey)|0,01|fill-\(index)"))
            if answer.hasPrefix("OK|") {
                acknowledged.append(String(answer.split(separator: "|")[1]))
            } else {
                refusal = answer
                break
            }
        }
        #expect(refusal?.hasPrefix("ERR|unavailable|") == true, "the full disk gave \(refusal ?? "no refusal")")
        #expect(acknowledged.count > 10)
        expectNothingAcknowledged(alice, bobKey, "fill")
        #expect(await server.child.exitStatus() == 1)
        #expect(server.child.errors.text.contains("No space left on device"), "\(server.child.errors.text)")

        try FileManager.default.removeItem(atPath: filler)
        try await expectRebuilt(journal, acknowledged: acknowledged, token: token)
    }

    @Test(
        "A journal file system the kernel turns read-only under the running server; a restart on it refuses; after repair the acknowledged prefix is back",
        .enabled(if: loopRefusal == nil, "\(loopRefusal ?? "")"))
    func fileSystemTurnsReadOnly() async throws {
        let base = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let image = base + "/fs.img"
        #expect(FileManager.default.createFile(atPath: image, contents: nil))
        #expect(truncate(image, 16 << 20) == 0)
        let made = tool("/usr/sbin/mkfs.ext4", ["-q", "-F", image])
        try #require(made.status == 0, "mkfs.ext4: \(made.output)")
        var disk = try Mounted.ext4(image: image, at: base + "/fs")
        defer { disk.unmount() }
        let journal = disk.point + "/journal"
        let server = try await ServerProcess(journal: journal)
        let (alice, token, bobKey) = try registerPair(server.port)
        var acknowledged: [String] = []
        for index in 0..<3 {
            let answer = try #require(alice.request("SEND|\(bobKey)|0,01|ro-\(index)"))
            try #require(answer.hasPrefix("OK|"), "\(answer)")
            acknowledged.append(String(answer.split(separator: "|")[1]))
        }

        // What ext4 does at an I/O error with errors=remount-ro: the file
        // system turns read-only at once, open files included.
        let source = tool("/usr/bin/findmnt", ["-n", "-o", "SOURCE", disk.point]).output
        let device = try #require(
            source.split(separator: "/").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
        try "carteira disk-fault test".write(
            toFile: "/sys/fs/ext4/\(device)/trigger_fs_error", atomically: false, encoding: .utf8)

        let answer = alice.request("SEND|\(bobKey)|0,01|ro-3")
        #expect(answer?.hasPrefix("ERR|unavailable|") == true, "a read-only journal gave \(answer ?? "nothing")")
        expectNothingAcknowledged(alice, bobKey, "ro")
        #expect(await server.child.exitStatus() == 1)
        #expect(server.child.errors.text.contains("Read-only file system"), "\(server.child.errors.text)")

        // A start on the read-only directory refuses, and says why.
        let refused = try ChildProcess("carteira-server", ["--port", "0", "--journal", journal, "--no-console"])
        #expect(await refused.exitStatus() == 1)
        #expect(refused.errors.text.contains("Read-only file system"), "\(refused.errors.text)")

        // The operator's repair: unmount, check the file system, mount again.
        disk.unmount()
        let checked = tool("/usr/sbin/e2fsck", ["-f", "-y", image])
        #expect(checked.status == 0 || checked.status == 1, "e2fsck: \(checked.output)")
        disk = try Mounted.ext4(image: image, at: base + "/fs")
        try await expectRebuilt(journal, acknowledged: acknowledged, token: token)
    }

    @Test("A journal file deleted under the running server: the next sync notices, nothing more is acknowledged")
    func journalDeleted() async throws {
        let base = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let journal = base + "/journal"
        let server = try await ServerProcess(journal: journal)
        let (alice, _, bobKey) = try registerPair(server.port)
        #expect(alice.request("SEND|\(bobKey)|1|before")?.hasPrefix("OK|") == true)

        try FileManager.default.removeItem(atPath: journal + "/" + Journal.fileName)
        let answer = alice.request("SEND|\(bobKey)|1|after")
        #expect(answer?.hasPrefix("ERR|unavailable|") == true, "a deleted journal gave \(answer ?? "nothing")")
        expectNothingAcknowledged(alice, bobKey, "deleted")
        #expect(await server.child.exitStatus() == 1)
        #expect(server.child.errors.text.contains("deleted"), "\(server.child.errors.text)")
    }

    @Test("A journal file replaced under the running server: the next sync notices; a restart replays the replacement")
    func journalReplaced() async throws {
        let base = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let journal = base + "/journal"
        let server = try await ServerProcess(journal: journal)
        let (alice, token, bobKey) = try registerPair(server.port)
        var acknowledged: [String] = []
        for index in 0..<3 {
            let answer = try #require(alice.request("SEND|\(bobKey)|0,01|replaced-\(index)"))
            try #require(answer.hasPrefix("OK|"), "\(answer)")
            acknowledged.append(String(answer.split(separator: "|")[1]))
        }
        // A copy put in place by rename, as a restore from backup would.
        let path = journal + "/" + Journal.fileName
        let copy = path + ".restored"
        try FileManager.default.copyItem(atPath: path, toPath: copy)
        #expect(rename(copy, path) == 0)

        let answer = alice.request("SEND|\(bobKey)|0,01|replaced-3")
        #expect(answer?.hasPrefix("ERR|unavailable|") == true, "a replaced journal gave \(answer ?? "nothing")")
        expectNothingAcknowledged(alice, bobKey, "replaced")
        #expect(await server.child.exitStatus() == 1)
        #expect(server.child.errors.text.contains("replaced"), "\(server.child.errors.text)")
        try await expectRebuilt(journal, acknowledged: acknowledged, token: token)
    }

    @Test("The file storage's sync refuses a journal that was deleted, renamed away or replaced, and passes otherwise")
    func storageNoticesLostFile() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/" + Journal.fileName
        func expectRefused(_ change: () throws -> Void, _ words: String) throws {
            try? FileManager.default.removeItem(atPath: path)
            let storage = try PosixJournalStorage(path: path)
            try storage.append(Array("line\n".utf8))
            try storage.sync()
            try change()
            try storage.append(Array("more\n".utf8))
            do {
                try storage.sync()
                Issue.record("sync passed after the file was \(words)")
            } catch let error as JournalError {
                #expect("\(error)".contains(words), "\(error)")
            }
        }
        try expectRefused({ try FileManager.default.removeItem(atPath: path) }, "deleted")
        try expectRefused({ try FileManager.default.moveItem(atPath: path, toPath: path + ".moved") }, "deleted")
        try expectRefused(
            {
                #expect(FileManager.default.createFile(atPath: path + ".new", contents: Data("x\n".utf8)))
                #expect(rename(path + ".new", path) == 0)
            }, "replaced")
        // Untouched, a sync passes (and a hard link elsewhere does not matter).
        try? FileManager.default.removeItem(atPath: path)
        let storage = try PosixJournalStorage(path: path)
        try storage.append(Array("line\n".utf8))
        #expect(link(path, path + ".link") == 0)
        try storage.sync()
        #expect(try storage.size() == 5)
    }
}
