import CarteiraTestSupport
import Foundation
import Testing

/// Runs `carteira-server journal ARGS` and collects what it printed.
private func journalCommand(_ arguments: [String]) async throws -> (status: Int32?, output: String, errors: String) {
    try await runToEnd("carteira-server", ["journal"] + arguments)
}

/// The one object of a `--format json` answer (an array of one object).
private func onlyObject(_ text: String) throws -> [String: Any] {
    let value = try JSONSerialization.jsonObject(with: Data(text.utf8))
    let array = try #require(value as? [[String: Any]], "not an array of objects: \(text)")
    return try #require(array.first)
}

private func balances(_ text: String) throws -> [String: Int] {
    let rows = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]], "\(text)")
    var balances: [String: Int] = [:]
    for row in rows {
        balances[try #require(row["machine"] as? String)] = try #require(row["balance_cents"] as? Int)
    }
    return balances
}

/// A journal written by a real server: alice, bob and carol, and transfers
/// among them (alice pays bob 12,34, bob pays carol 1,00, carol pays alice
/// 0,50, alice pays carol 3,00).
private func makeBusyJournal() async throws -> (directory: String, journal: String, lines: [String]) {
    let directory = try makeTemporaryDirectory()
    let journal = directory + "/journal"
    let server = try await ServerProcess(journal: journal)
    let alice = try LineSocket(port: server.port)
    let bob = try LineSocket(port: server.port)
    let carol = try LineSocket(port: server.port)
    func key(_ reply: String?) throws -> String {
        try #require(reply?.split(separator: "|").dropFirst(3).first.map(String.init), "\(reply ?? "nil")")
    }
    let aliceKey = try key(alice.request("REGISTER|alice"))
    let bobKey = try key(bob.request("REGISTER|bob"))
    let carolKey = try key(carol.request("REGISTER|carol"))
    /// The answer to a request, past the pushes of money received.
    func answer(_ socket: LineSocket, _ line: String) -> String? {
        var reply = socket.request(line)
        while reply?.hasPrefix("EVT|") == true { reply = socket.readLine() }
        return reply
    }
    #expect(answer(alice, "SEND|\(bobKey)|12,34")?.hasPrefix("OK|") == true)
    #expect(answer(bob, "SEND|\(carolKey)|1")?.hasPrefix("OK|") == true)
    #expect(answer(carol, "SEND|\(aliceKey)|0,50")?.hasPrefix("OK|") == true)
    #expect(answer(alice, "SEND|\(carolKey)|3")?.hasPrefix("OK|") == true)
    #expect(await server.stop() == 0)
    let text = try String(contentsOfFile: journal + "/ledger.journal", encoding: .utf8)
    return (directory, journal, text.split(separator: "\n").map(String.init))
}

/// Re-computes every line's hash from scratch, as someone covering up a
/// change would (JOURNAL.md: sha256 of the previous hash, a space, the text).
private func rehash(_ lines: [String]) throws -> String {
    let script = """
        import hashlib, sys
        prev = "0" * 64
        for line in sys.stdin.read().splitlines():
            body = line.rpartition(" hash=")[0]
            prev = hashlib.sha256(f"{prev} {body}".encode()).hexdigest()
            print(f"{body} hash={prev}")
        """
    let python = Process()
    python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    python.arguments = ["python3", "-c", script]
    let input = Pipe()
    let output = Pipe()
    python.standardInput = input
    python.standardOutput = output
    try python.run()
    input.fileHandleForWriting.write(Data((lines.joined(separator: "\n") + "\n").utf8))
    try input.fileHandleForWriting.close()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    python.waitUntilExit()
    try #require(python.terminationStatus == 0)
    return String(decoding: data, as: UTF8.self)
}

@Suite("Auditors' tools: verify's verdict and anchors, replay --at, statements", .timeLimit(.minutes(3)))
struct AuditToolTests {
    @Test("verify prints a verdict line and --format json with the head; a bad line is named in both")
    func verifyVerdictAndJSON() async throws {
        let (directory, journal, lines) = try await makeBusyJournal()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let table = try await journalCommand(["verify", journal])
        #expect(table.status == 0)
        let verdict = try #require(table.output.split(separator: "\n").last)
        #expect(verdict.hasPrefix("verdict: ok: \(lines.count) lines"), "\(table.output)")

        let json = try await journalCommand(["verify", journal, "--format", "json"])
        #expect(json.status == 0)
        let object = try onlyObject(json.output)
        #expect(object["events"] as? Int == lines.count)
        #expect(object["machines"] as? Int == 3)
        #expect(object["transfers"] as? Int == 4)
        #expect(object["total_money_cents"] as? Int == 30_000)
        #expect(object["last_seq"] as? Int == lines.count - 1)
        let lastHash = try #require(lines.last?.split(separator: "=").last.map(String.init))
        #expect(object["last_hash"] as? String == lastHash)
        #expect(object["verdict"] as? String == "ok")
        #expect(object["first_bad_line"] is NSNull)

        // Line 3 is bob's registration: more money for him breaks its hash.
        let path = journal + "/ledger.journal"
        var damaged = lines
        damaged[2] = damaged[2].replacingOccurrences(of: "balance=10000", with: "balance=90000")
        try (damaged.joined(separator: "\n") + "\n").write(toFile: path, atomically: false, encoding: .utf8)
        let bad = try await journalCommand(["verify", journal, "--format", "json"])
        #expect(bad.status == 1)
        let failed = try onlyObject(bad.output)
        #expect(failed["verdict"] as? String == "failed")
        #expect(failed["first_bad_line"] as? Int == 3)
        #expect((failed["problem"] as? String)?.hasPrefix("line 3:") == true)
        // The summary is of the two lines before it.
        #expect(failed["events"] as? Int == 2)
        #expect(failed["last_seq"] as? Int == 1)
        let badTable = try await journalCommand(["verify", journal])
        #expect(badTable.status == 1)
        #expect(badTable.output.split(separator: "\n").last?.hasPrefix("verdict: FAILED: line 3:") == true)
    }

    @Test("verify --expect SEQ:HASH fails on a journal re-hashed from scratch after a change before SEQ")
    func expectCatchesRehashedJournal() async throws {
        let (directory, journal, lines) = try await makeBusyJournal()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // The auditor writes down the head, and an earlier line too.
        let head = try onlyObject(try await journalCommand(["verify", journal, "--format", "json"]).output)
        let seq = try #require(head["last_seq"] as? Int)
        let hash = try #require(head["last_hash"] as? String)
        let secondHash = try #require(lines[2].split(separator: "=").last)
        let anchored = try await journalCommand([
            "verify", journal, "--expect", "\(seq):\(hash)", "--expect", "2:\(secondHash)",
        ])
        #expect(anchored.status == 0, "\(anchored.output)\(anchored.errors)")
        #expect(anchored.output.contains("expect seq \(seq): ok"))

        // Someone gives bob more money at seq 2 and re-hashes the whole chain.
        var changed = lines
        changed[2] = changed[2].replacingOccurrences(of: "balance=10000", with: "balance=20000")
        try rehash(changed).write(toFile: journal + "/ledger.journal", atomically: false, encoding: .utf8)
        // Plain verify cannot tell: the chain and the rules check.
        #expect(try await journalCommand(["verify", journal]).status == 0)
        let caught = try await journalCommand(["verify", journal, "--expect", "\(seq):\(hash)"])
        #expect(caught.status == 1)
        #expect(caught.output.contains("expect seq \(seq): FAILED"), "\(caught.output)")
        #expect(caught.output.contains("rewritten at or before seq \(seq)"))
        let json = try onlyObject(
            try await journalCommand(["verify", journal, "--expect", "\(seq):\(hash)", "--format", "json"]).output)
        #expect(json["verdict"] as? String == "failed")
        let anchors = try #require(json["anchors"] as? [[String: Any]])
        #expect(anchors.first?["matches"] as? String == "false")
        // Before the change, the anchor still holds: seq 1 was not touched.
        let firstHash = try #require(lines[1].split(separator: "=").last)
        #expect(try await journalCommand(["verify", journal, "--expect", "1:\(firstHash)"]).status == 0)
        // An anchor past the end fails; a malformed one is refused with a clear message.
        #expect(try await journalCommand(["verify", journal, "--expect", "99:\(hash)"]).status == 1)
        let malformed = try await journalCommand(["verify", journal, "--expect", "seven:abc"])
        #expect(malformed.status != 0 && malformed.errors.contains("--expect"))
    }

    @Test("replay --at SEQ and --at TIME equal a replay of the journal's prefix; the journal is not changed")
    func replayAtMatchesPrefix() async throws {
        let (directory, journal, lines) = try await makeBusyJournal()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let before = try Data(contentsOf: URL(fileURLWithPath: journal + "/ledger.journal"))
        for seq in 0..<lines.count {
            let prefix = directory + "/prefix-\(seq)"
            try FileManager.default.createDirectory(atPath: prefix, withIntermediateDirectories: true)
            try (lines[0...seq].joined(separator: "\n") + "\n").write(
                toFile: prefix + "/ledger.journal", atomically: false, encoding: .utf8)
            let expected = try await journalCommand(["replay", prefix, "--format", "json"])
            let atSeq = try await journalCommand(["replay", journal, "--at", "\(seq)", "--format", "json"])
            #expect(atSeq.status == 0)
            #expect(atSeq.output == expected.output, "seq \(seq)")
            // The line's own time: the state after the last line not later.
            let time = try #require(lines[seq].split(separator: " ")[1].split(separator: "=").last)
            let atTime = try await journalCommand(["replay", journal, "--at", String(time), "--format", "json"])
            let last = lines.lastIndex { $0.split(separator: " ")[1].dropFirst(3) <= time } ?? seq
            if last == seq {
                #expect(atTime.output == expected.output, "time \(time)")
            }
        }
        let table = try await journalCommand(["replay", journal, "--at", "4"])
        #expect(table.output.contains("as of seq 4"))
        let beyond = try await journalCommand(["replay", journal, "--at", "\(lines.count + 5)"])
        #expect(beyond.status == 1 && beyond.errors.contains("ends at seq \(lines.count - 1)"))
        let early = try await journalCommand(["replay", journal, "--at", "2000-01-01"])
        #expect(early.status == 1 && early.errors.contains("nothing in the journal"))
        let nonsense = try await journalCommand(["replay", journal, "--at", "yesterday"])
        #expect(nonsense.status != 0 && nonsense.errors.contains("--at"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: journal + "/ledger.journal")) == before)
    }

    @Test("A statement's running balance matches replay --at at every line; CSV is one table")
    func statementMatchesReplay() async throws {
        let (directory, journal, _) = try await makeBusyJournal()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for machine in ["alice", "bob", "carol"] {
            let statement = try onlyObject(
                try await journalCommand(["statement", machine, journal, "--format", "json"]).output)
            let lines = try #require(statement["lines"] as? [[String: Any]])
            #expect(!lines.isEmpty)
            for line in lines {
                let seq = try #require(line["seq"] as? Int)
                let replayed = try balances(
                    try await journalCommand(["replay", journal, "--at", "\(seq)", "--format", "json"]).output)
                #expect(line["balance_cents"] as? Int == replayed[machine], "\(machine) at seq \(seq)")
            }
            let totalIn = try #require(statement["total_in_cents"] as? Int)
            let totalOut = try #require(statement["total_out_cents"] as? Int)
            #expect(statement["opening_balance_cents"] as? Int == 10_000)
            #expect(statement["closing_balance_cents"] as? Int == 10_000 + totalIn - totalOut)
            let now = try balances(try await journalCommand(["replay", journal, "--format", "json"]).output)
            #expect(statement["closing_balance_cents"] as? Int == now[machine])
        }
        let csv = try await journalCommand(["statement", "alice", journal, "--format", "csv"])
        let rows = csv.output.split(separator: "\n")
        #expect(rows.first == "seq,tx,time,direction,counterparty,amount_cents,balance_cents")
        #expect(rows.dropFirst().allSatisfy { $0.split(separator: ",", omittingEmptySubsequences: false).count == 7 })
        #expect(rows[1] == ",,,opening,,,10000")
        let unknown = try await journalCommand(["statement", "nobody", journal])
        #expect(unknown.status == 1 && unknown.errors.contains("no machine named nobody"))
    }
}
