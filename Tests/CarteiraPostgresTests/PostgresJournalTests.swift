#if Postgres
    import CarteiraCore
    import CarteiraJournal
    import CarteiraPostgres
    import CarteiraServer
    import CarteiraTestSupport
    import Foundation
    import Synchronization
    import Testing

    /// Registration events for machines `prefix0`, `prefix1`, ... following
    /// `ledger`'s last line, applied to it.
    func registrations(_ count: Int, prefix: String, after ledger: inout Ledger) -> [Event] {
        var events: [Event] = []
        for index in 0..<count {
            guard let name = MachineName("\(prefix)\(index)"),
                let digest = TokenDigest(String(repeating: "ab", count: 32))
            else { preconditionFailure("fixed test values are valid") }
            let key = PaymentKey(randomBytes: (0..<16).map { _ in UInt8.random(in: 0...255) })
            let command = Command.register(
                machine: name, tokenDigest: digest, key: key, initialBalance: Centavos(10_000))
            // Now: keys that expired would be rotated by a server that takes over.
            guard case let .accept(event) = ledger.decide(command, at: systemClock())
            else { preconditionFailure("a fresh name registers") }
            try? ledger.apply(event)
            events.append(event)
        }
        return events
    }

    /// The genesis line, written straight to the table.
    func writeGenesis(_ store: PostgresJournalStore, ledger: inout Ledger) async throws -> String {
        let genesis = Event(seq: 0, at: systemClock(), kind: .genesis)
        let (line, hash) = JournalCodec.encode(genesis, previousHash: JournalCodec.zeroHash)
        try await store.insert(seqs: [0], lines: [String(line.dropLast())])
        try ledger.apply(genesis)
        return hash
    }

    /// A fresh table holding the genesis line and `count` registrations
    /// (`prefix0`, ...), appended as a leader appends them; its URL, an open
    /// store on it and the last line's hash.
    func tableOfRegistrations(_ count: Int, prefix: String) async throws -> (
        url: PostgresURL, store: PostgresJournalStore, lastHash: String
    ) {
        let url = try PostgresFixture.database()
        let store = try await PostgresJournalStore.connect(url, limits: nil, logger: quietLogger)
        var ledger = Ledger()
        let hash = try await writeGenesis(store, ledger: &ledger)
        var bytes: [UInt8] = []
        var chain = Array(hash.utf8)
        for event in registrations(count, prefix: prefix, after: &ledger) {
            JournalEncoder.appendLine(event, chainHash: &chain, to: &bytes)
        }
        let storage = PostgresJournalStorage(store: store)
        try storage.append(bytes)
        try storage.sync()
        return (url, store, String(decoding: chain, as: UTF8.self))
    }

    /// Another writer (a leader that does not know it lost) appends the next
    /// line, the registration of `prefix0`, behind the running leader's back.
    func appendBehindTheLeader(_ url: PostgresURL, prefix: String) async throws {
        let intruder = try await PostgresJournalStore.connect(url, limits: nil, logger: quietLogger)
        var follower = JournalFollower(policy: KeyPolicy())
        try await follower.catchUp(from: intruder)
        var ledger = follower.ledger
        let event = registrations(1, prefix: prefix, after: &ledger)[0]
        var chain = Array(follower.lastHash.utf8)
        var bytes: [UInt8] = []
        JournalEncoder.appendLine(event, chainHash: &chain, to: &bytes)
        try await intruder.insert(seqs: [event.seq], lines: [String(decoding: bytes.dropLast(), as: UTF8.self)])
        await intruder.close()
    }

    final class Counter: Sendable {
        private let value = Atomic<Int>(0)
        /// The count before this call.
        func next() -> Int { value.wrappingAdd(1, ordering: .relaxed).oldValue }
    }

    @Suite(
        "PostgreSQL journal", .serialized,
        .enabled(if: PostgresFixture.available, Comment(rawValue: PostgresFixture.unavailableReason)))
    struct PostgresJournalTests {
        @Test("a batch goes in one statement and replays, exports and verifies as a file journal")
        func batchInsertAndReplayRoundTrip() async throws {
            let url = try PostgresFixture.database()
            let store = try await PostgresJournalStore.connect(url, limits: nil, logger: quietLogger)
            var ledger = Ledger()
            let genesisHash = try await writeGenesis(store, ledger: &ledger)
            let events = registrations(40, prefix: "m", after: &ledger)
            let storage = PostgresJournalStorage(store: store)
            // The writer's own batching is not under test here: one append
            // and one sync of 40 lines is one INSERT of 40 rows.
            var bytes: [UInt8] = []
            var chain = Array(genesisHash.utf8)
            for event in events { JournalEncoder.appendLine(event, chainHash: &chain, to: &bytes) }
            try storage.append(bytes)
            try storage.sync()
            #expect(try storage.size() == Int64(bytes.count))
            #expect(try PostgresFixture.sql(url, "SELECT count(*) FROM carteira_journal") == "41")

            // The writer, as the leader uses it, continues the chain.
            let writer = JournalWriter(storage: storage, lastSeq: 40, lastHash: chain, fileSize: Int64(bytes.count))
            let more = registrations(5, prefix: "w", after: &ledger)
            for event in more { #expect(writer.append(event)) }
            try await writer.waitDurable(through: 45)
            await writer.shutdown()

            let follower = try await PostgresJournalTools.verify(store)
            #expect(follower.lastSeq == 45)
            #expect(follower.ledger.machines == ledger.machines)
            #expect(follower.ledger.totalMoney == Centavos(450_000))

            // export writes a file that the file journal's verify accepts.
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            var text = ""
            let lines = try await PostgresJournalTools.export(store) { text += $0 }
            #expect(lines == 46)
            try text.write(toFile: directory.path + "/ledger.journal", atomically: true, encoding: .utf8)
            let summary = try JournalVerifier.verify(directory: directory.path)
            #expect(summary.lastSeq == 45)
            #expect(summary.lastHash == follower.lastHash)
            #expect(summary.machines == 45)
            await store.close()
        }

        @Test("a damaged row stops the replay naming the line")
        func damagedRowIsNamed() async throws {
            let url = try PostgresFixture.database()
            let store = try await PostgresJournalStore.connect(url, limits: nil, logger: quietLogger)
            var ledger = Ledger()
            _ = try await writeGenesis(store, ledger: &ledger)
            try PostgresFixture.sql(url, "INSERT INTO carteira_journal VALUES (1, 'seq=1 at=nonsense')")
            await #expect(throws: JournalError.self) { try await PostgresJournalTools.verify(store) }
            do {
                _ = try await PostgresJournalTools.verify(store)
            } catch {
                #expect("\(error)".contains("line 2"))
            }
            await store.close()
        }

        @Test("verify --expect on the table: an anchor holds, and fails on a chain re-hashed after a change before it")
        func anchoredVerifyOnTheTable() async throws {
            // The same 31 lines into two tables, except that the second
            // changes line 11 (seq 10) and re-hashes everything after it.
            let genesis = Event(seq: 0, at: systemClock(), kind: .genesis)
            var ledger = Ledger()
            try ledger.apply(genesis)
            let events = [genesis] + registrations(30, prefix: "m", after: &ledger)
            var forged = events
            var other = Ledger()
            for event in events.prefix(10) { try other.apply(event) }
            forged.replaceSubrange(10..., with: registrations(21, prefix: "x", after: &other))

            var heads: [String] = []
            var stores: [PostgresJournalStore] = []
            for journal in [events, forged] {
                let url = try PostgresFixture.database()
                let store = try await PostgresJournalStore.connect(url, limits: nil, logger: quietLogger)
                var hash = JournalCodec.zeroHash
                var lines: [String] = []
                for event in journal {
                    let (line, next) = JournalCodec.encode(event, previousHash: hash)
                    lines.append(String(line.dropLast()))
                    hash = next
                }
                try await store.insert(seqs: journal.map(\.seq), lines: lines)
                heads.append(hash)
                stores.append(store)
            }
            let original = try await PostgresJournalTools.report(stores[0])
            #expect(original.passed && original.summary.lastSeq == 30 && original.summary.lastHash == heads[0])
            guard let anchor = JournalAnchor("30:\(heads[0])"),
                let early = JournalAnchor("5:\(String(repeating: "0", count: 64))")
            else { preconditionFailure("fixed anchors parse") }

            let held = try await PostgresJournalTools.report(stores[0], expecting: [anchor])
            #expect(held.passed && held.anchors.map(\.matches) == [true])
            // The forged table verifies on its own (its chain is whole)...
            let forgedAlone = try await PostgresJournalTools.report(stores[1])
            #expect(forgedAlone.passed)
            // ...but not against the head written down before the change.
            let caught = try await PostgresJournalTools.report(stores[1], expecting: [anchor])
            #expect(!caught.passed && caught.problem == nil)
            #expect(caught.anchors.first?.found == heads[1])
            let wrong = try await PostgresJournalTools.report(stores[0], expecting: [early])
            #expect(!wrong.passed && wrong.anchors.first?.found != nil)
            for store in stores { await store.close() }
        }

        @Test("verify's report names the first bad row and summarises the rows before it")
        func reportNamesTheBadRow() async throws {
            let (url, store, lastHash) = try await tableOfRegistrations(3, prefix: "r")
            try PostgresFixture.sql(url, "INSERT INTO carteira_journal VALUES (4, 'seq=4 at=nonsense')")
            let report = try await PostgresJournalTools.report(store)
            #expect(!report.passed)
            #expect(report.problem?.line == 5)
            #expect(report.summary.lastSeq == 3 && report.summary.machines == 3)
            #expect(report.summary.lastHash == lastHash)
            await store.close()
        }

        @Test("replay --at on the table gives the state of the same prefix of its export, by seq and by time")
        func pointInTimeOnTheTable() async throws {
            let (_, store, _) = try await tableOfRegistrations(20, prefix: "p")
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            var text = ""
            _ = try await PostgresJournalTools.export(store) { text += $0 }
            try text.write(toFile: directory.path + "/ledger.journal", atomically: true, encoding: .utf8)

            for seq in [0, 7, 20] as [Int64] {
                let table = try await PostgresJournalTools.verify(store, through: .seq(seq))
                let file = try JournalVerifier.verify(directory: directory.path, through: .seq(seq))
                #expect(table.lastSeq == seq && table.lastHash == file.lastHash)
                #expect(table.ledger.machines == file.ledger.machines)
                #expect(table.stoppedEarly == (seq < 20) && table.lastAt == file.lastAt)
            }
            let middle = try await PostgresJournalTools.verify(store, through: .seq(10))
            let at = try #require(middle.lastAt)
            let byTime = try await PostgresJournalTools.verify(store, through: .time(at))
            let fileByTime = try JournalVerifier.verify(directory: directory.path, through: .time(at))
            #expect(byTime.lastSeq == fileByTime.lastSeq && byTime.lastHash == fileByTime.lastHash)
            #expect(byTime.lastSeq >= 10)
            await store.close()
        }

        @Test("a writer whose lease goes stale during a write answers nothing, though the line committed")
        func staleLeaseAnswersNothing() async throws {
            let url = try PostgresFixture.database()
            let store = try await PostgresJournalStore.connect(url, limits: nil, logger: quietLogger)
            var ledger = Ledger()
            let hash = try await writeGenesis(store, ledger: &ledger)
            // Fresh before the write, stale after it: as a leader stopped
            // (SIGSTOP) while its INSERT was in flight finds when it resumes.
            let asked = Counter()
            let storage = PostgresJournalStorage(store: store) {
                asked.next() == 0 ? nil : "no heartbeat within 4 s"
            }
            let writer = JournalWriter(storage: storage, lastSeq: 0, lastHash: Array(hash.utf8), fileSize: 0)
            let events = registrations(2, prefix: "s", after: &ledger)
            #expect(writer.append(events[0]))
            await #expect(throws: JournalError.closed) { try await writer.waitDurable(through: 1) }
            #expect(storage.fenceReason?.contains("lost leadership") == true)
            #expect(!writer.append(events[1]))
            // Outcome unknown, not lost: the line is there for the next leader.
            #expect(try PostgresFixture.sql(url, "SELECT count(*) FROM carteira_journal") == "2")
            await writer.shutdown()
            await store.close()
        }

        @Test("two writers at the same tail: the second meets the primary key, acknowledges nothing, stops")
        func uniqueViolationFence() async throws {
            let url = try PostgresFixture.database()
            let first = try await PostgresJournalStore.connect(url, limits: nil, logger: quietLogger)
            let second = try await PostgresJournalStore.connect(url, limits: nil, logger: quietLogger)
            var ledger = Ledger()
            let hash = try await writeGenesis(first, ledger: &ledger)
            var ledgerA = ledger
            var ledgerB = ledger
            let writerA = JournalWriter(
                storage: PostgresJournalStorage(store: first), lastSeq: 0, lastHash: Array(hash.utf8), fileSize: 0)
            let storageB = PostgresJournalStorage(store: second)
            let writerB = JournalWriter(storage: storageB, lastSeq: 0, lastHash: Array(hash.utf8), fileSize: 0)

            let a = registrations(1, prefix: "a", after: &ledgerA)
            let b = registrations(2, prefix: "b", after: &ledgerB)
            #expect(writerA.append(a[0]))
            try await writerA.waitDurable(through: 1)
            #expect(writerB.append(b[0]))
            await #expect(throws: JournalError.closed) { try await writerB.waitDurable(through: 1) }
            #expect(writerB.durableSeq == 0)
            #expect("\(writerB.failure.map { "\($0)" } ?? "")".contains("lost leadership"))
            #expect(storageB.fenceReason != nil)
            // Nothing more is ever taken.
            #expect(!writerB.append(b[1]))
            #expect(
                try PostgresFixture.sql(url, "SELECT line LIKE '%machine=a0 %' FROM carteira_journal WHERE seq = 1")
                    == "t")
            await writerA.shutdown()
            await writerB.shutdown()
            await first.close()
            await second.close()
        }
    }
#endif
