import ArgumentParser
import CarteiraCore
import CarteiraJournal
import Foundation

/// Writes a synthetic, valid journal (registrations, then transfers between
/// them, hash-chained by `JournalCodec.encode`) and times replay and verify.
@main
struct ReplayBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "carteira-replay-bench",
        abstract: "Times Journal.open (replay) and JournalVerifier.verify over a synthetic journal."
    )

    @Option(help: "Events in the journal, the genesis line included.")
    var events: Int = 1_000_000

    @Option(help: "Machines registered before the transfers start.")
    var machines: Int = 4_000

    @Option(help: "Directory to write into (a fresh temporary one by default; removed afterwards).")
    var directory: String?

    @Flag(help: "Keep the journal directory afterwards.")
    var keep = false

    func validate() throws {
        guard (2...1_000_000).contains(machines), events > machines else {
            throw ValidationError("need 2...1000000 machines and more events than machines")
        }
    }

    func run() async throws {
        let directory =
            self.directory
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("carteira-replay-\(UUID().uuidString)")
            .path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { if !keep { try? FileManager.default.removeItem(atPath: directory) } }

        let path = directory + "/" + Journal.fileName
        let (writeSeconds, bytes) = try timed { try writeJournal(path: path) }
        report("write", seconds: writeSeconds, extra: "\(bytes / 1_048_576) MiB")

        let (replaySeconds, opened) = try timed {
            try Journal.open(directory: directory, policy: KeyPolicy(), now: Timestamp(milliseconds: Self.epoch))
        }
        let replayed = opened.ledger.eventCount
        await opened.writer.shutdown()
        opened.lock.release()
        guard replayed == events else { throw ValidationError("replay saw \(replayed) events, expected \(events)") }
        report("replay (Journal.open)", seconds: replaySeconds, extra: nil)

        let (verifySeconds, summary) = try timed { try JournalVerifier.verify(directory: directory) }
        guard summary.events == events else { throw ValidationError("verify saw \(summary.events) events") }
        report("verify (JournalVerifier.verify)", seconds: verifySeconds, extra: nil)
    }

    /// 2026-11-26T00:00:00Z: far enough in the future that replay rotates no key.
    static let epoch: Int64 = 1_795_651_200_000

    /// Genesis, `machines` registrations, then transfers of 1-100 centavos
    /// between seeded random pairs, never more than the payer has.
    func writeJournal(path: String) throws -> Int {
        guard let file = fopen(path, "w") else { throw ValidationError("cannot create \(path)") }
        defer { fclose(file) }
        var random = SplitMix64(seed: 42)
        var previousHash = JournalCodec.zeroHash
        var bytes = 0
        var names: [MachineName] = []
        var keys: [PaymentKey] = []
        var balances: [Int64] = []
        func write(_ seq: Int, _ kind: Event.Kind) {
            let event = Event(seq: Int64(seq), at: Timestamp(milliseconds: Self.epoch + Int64(seq)), kind: kind)
            let (line, hash) = JournalCodec.encode(event, previousHash: previousHash)
            previousHash = hash
            bytes += line.utf8.count
            fputs(line, file)
        }
        write(0, .genesis)
        let digest = TokenDigest(String(repeating: "ab", count: 32))
        for index in 0..<machines {
            guard let name = MachineName("bench-\(index)"), let digest else { preconditionFailure("valid names") }
            let key = PaymentKey(randomBytes: (0..<16).map { _ in UInt8(truncatingIfNeeded: random.next()) })
            names.append(name)
            keys.append(key)
            balances.append(10_000)
            let expires = Timestamp(milliseconds: Self.epoch + 86_400_000)
            write(
                1 + index,
                .registered(
                    .init(machine: name, key: key, expires: expires, tokenDigest: digest, balance: Centavos(10_000))))
        }
        for seq in (1 + machines)..<events {
            var from = Int(random.next() % UInt64(machines))
            // Money is conserved and positive, so some machine has some: at most one lap.
            while balances[from] == 0 { from = (from + 1) % machines }
            var to = Int(random.next() % UInt64(machines - 1))
            if to >= from { to += 1 }
            let amount = min(Int64(1 + random.next() % 100), balances[from])
            balances[from] -= amount
            balances[to] += amount
            write(seq, transfer(seq, from: from, to: to, amount: amount, names: names, keys: keys))
        }
        return bytes
    }

    func transfer(_ seq: Int, from: Int, to: Int, amount: Int64, names: [MachineName], keys: [PaymentKey]) -> Event.Kind
    {
        // Every other transfer carries a request id, as idempotent clients would.
        let requestID = seq.isMultiple(of: 2) ? RequestID("r\(seq)") : nil
        return .transfer(
            .init(
                tx: TxID(seq: Int64(seq)), from: names[from], to: names[to], key: keys[to], amount: Centavos(amount),
                requestID: requestID))
    }

    func timed<T>(_ body: () throws -> T) throws -> (Double, T) {
        let clock = ContinuousClock()
        var result: T?
        let duration = try clock.measure { result = try body() }
        guard let result else { preconditionFailure("measure ran the body") }
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        return (seconds, result)
    }

    func report(_ what: String, seconds: Double, extra: String?) {
        let rate = Double(events) / seconds
        let tail = extra.map { ", \($0)" } ?? ""
        print(String(format: "%@: %d events in %.2f s = %.0f events/s%@", what, events, seconds, rate, tail))
    }
}

/// A small seeded generator, so every run writes the same journal.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
