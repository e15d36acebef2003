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
