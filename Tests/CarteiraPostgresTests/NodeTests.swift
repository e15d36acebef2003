#if Postgres
    import CarteiraCore
    import CarteiraJournal
    import CarteiraPostgres
    import CarteiraTestSupport
    import Foundation
    import Synchronization
    import Testing

    /// Runs blocking socket work on a thread of its own, so the cooperative
    /// pool (which the servers under test need) is never blocked.
    func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: body()) }
            thread.start()
        }
    }

    /// One request on a fresh connection to `port`; nil when none answered.
    func ask(_ port: Int, _ line: String) async -> String? {
        await onThread {
            guard let socket = try? LineSocket(port: port) else { return nil }
            return socket.request(line)
        }
    }

    /// `REGISTER|name` on `port`: the payment key, or nil.
    func register(_ port: Int, _ name: String) async -> (token: String, key: String)? {
        guard let answer = await ask(port, "REGISTER|\(name)"), answer.hasPrefix("OK|") else { return nil }
        let fields = answer.split(separator: "|").map(String.init)
        return fields.count == 5 ? (fields[2], fields[3]) : nil
    }

    /// What the peers of the cut test saw.
    final class Tally: Sendable {
        let acknowledged = Locked<[String]>([])
        /// Requests answered other than `OK`, or not at all.
        let refused = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
    }

    @Suite(
        "PostgreSQL leaders and standbys", .serialized,
        .enabled(if: PostgresFixture.available, Comment(rawValue: PostgresFixture.unavailableReason)))
    struct NodeTests {
        @Test("a standby that misses every notification still catches up by polling, then takes over")
        func standbyCatchesUpWithoutNotifications() async throws {
            let url = try PostgresFixture.database()
            // The test holds the lock, so the node stays a standby.
            let holder = try await PostgresJournalStore.connect(url, limits: nil, logger: quietLogger)
            #expect(try await holder.tryLock())
            try await holder.advertise("127.0.0.1:9")
            var ledger = Ledger()
            let genesisHash = try await writeGenesis(holder, ledger: &ledger)

            let standby = RunningNode(url: url)
            #expect(await standby.becomes(.standby))
            #expect(await eventually { standby.node.followedSeq == 0 })
            #expect(await ask(standby.port, "PING") == "OK|PONG")
            #expect(await ask(standby.port, "BALANCE") == "ERR|unavailable|standby; leader at 127.0.0.1:9")

            // 20 lines with no NOTIFY at all.
            var chain = Array(genesisHash.utf8)
            var lines: [String] = []
            let events = registrations(20, prefix: "quiet", after: &ledger)
            for event in events {
                var bytes: [UInt8] = []
                JournalEncoder.appendLine(event, chainHash: &chain, to: &bytes)
                lines.append(String(decoding: bytes.dropLast(), as: UTF8.self))
            }
            try await holder.insert(seqs: events.map(\.seq), lines: lines, notify: false)
            #expect(await eventually(within: 10) { standby.node.followedSeq == 20 })
            #expect(standby.node.role == .standby)

            // The lock frees; the standby catches up, records its address and serves.
            await holder.close()
            #expect(await standby.becomes(.leader))
            #expect(await ask(standby.port, "REGISTER|quiet3")?.hasPrefix("ERR|machine_exists") == true)
            #expect(await register(standby.port, "loud") != nil)
            #expect(try PostgresFixture.sql(url, "SELECT address FROM carteira_leader") == "127.0.0.1:\(standby.port)")
            #expect(try PostgresFixture.sql(url, "SELECT max(seq) FROM carteira_journal") == "21")
            await standby.stop()
        }

        @Test("a leader whose next seq another writer took answers unavailable, then recovers from the table")
        func leaderFencedByPrimaryKey() async throws {
            let url = try PostgresFixture.database()
            let leader = RunningNode(url: url)
            #expect(await leader.becomes(.leader))
            #expect(await register(leader.port, "alice") != nil)

            // Another writer (a leader that does not know it lost) appends the
            // next line behind this leader's back.
            try await appendBehindTheLeader(url, prefix: "mallory")

            let answer = await ask(leader.port, "REGISTER|bob")
            #expect(answer?.hasPrefix("ERR|unavailable") == true || answer == nil)
            #expect(
                try PostgresFixture.sql(url, "SELECT count(*) FROM carteira_journal WHERE line LIKE '%machine=bob %'")
                    == "0")
            // It starts over from what the table holds, and leads again.
            #expect(await eventually(within: 15) { leader.node.leaderTerms == 2 && leader.node.role == .leader })
            #expect(await ask(leader.port, "REGISTER|mallory0")?.hasPrefix("ERR|machine_exists") == true)
            #expect(await register(leader.port, "bob") != nil)
            await leader.stop()
        }

        @Test("a leader whose connection is cut mid-batch acknowledges only what the table holds")
        func connectionCutMidBatch() async throws {
            let url = try PostgresFixture.database()
            let leader = RunningNode(url: url)
            #expect(await leader.becomes(.leader))
            var keys: [String] = []
            var tokens: [String] = []
            for index in 0..<4 {
                let registered = try #require(await register(leader.port, "peer\(index)"))
                keys.append(registered.key)
                tokens.append(registered.token)
            }
            let tally = Tally()
            let port = leader.port
            let peers = (0..<4).map { index in
                let (payer, token, payee) = ("peer\(index)", tokens[index], keys[(index + 1) % 4])
                return Task {
                    await onThread {
                        guard let socket = try? LineSocket(port: port),
                            socket.request("LOGIN|\(payer)|\(token)")?.hasPrefix("OK") == true
                        else { return }
                        var round = 0
                        while !tally.stop.load(ordering: .relaxed) {
                            // Pipelined: eight requests in flight per peer.
                            for item in 0..<8 { socket.send("SEND|\(payee)|0,01|r\(round)-\(item)\n") }
                            for _ in 0..<8 {
                                // Pushes (`EVT|received`) come between answers.
                                var next = socket.readLine()
                                while let push = next, push.hasPrefix("EVT|") { next = socket.readLine() }
                                guard let line = next else {
                                    tally.refused.add(1, ordering: .relaxed)
                                    return
                                }
                                if line.hasPrefix("OK|") {
                                    let tx = String(line.split(separator: "|")[1])
                                    tally.acknowledged.withLock { $0.append(tx) }
                                } else {
                                    tally.refused.add(1, ordering: .relaxed)
                                    return
                                }
                            }
                            round += 1
                        }
                    }
                }
            }
            #expect(await eventually(within: 20) { tally.acknowledged.withLock { $0.count } >= 200 })
            try PostgresFixture.sql(
                url,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'carteira-server' AND datname = current_database()"
            )
            #expect(await eventually(within: 20) { leader.node.leaderTerms == 2 && leader.node.role == .leader })
            tally.stop.store(true, ordering: .relaxed)
            for peer in peers { await peer.value }

            let store = try await PostgresJournalStore.connect(url, limits: nil, logger: quietLogger)
            let follower = try await PostgresJournalTools.verify(store)
            let ok = tally.acknowledged.withLock { $0 }
            let missing = ok.filter { tx in TxID(tx).map { follower.ledger.transfer($0) == nil } ?? true }
            #expect(missing.isEmpty, "acknowledged but not in the table: \(missing.prefix(5))")
            // Some requests were in flight when the connection went, and
            // none of those was answered OK without being in the table.
            #expect(tally.refused.load(ordering: .relaxed) > 0)
            #expect(follower.ledger.totalMoney == Centavos(40_000))
            await store.close()
            await leader.stop()
        }
    }
#endif
