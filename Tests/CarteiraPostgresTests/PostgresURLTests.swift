#if Postgres
    import CarteiraPostgres
    import Testing

    @Suite("postgres:// URLs")
    struct PostgresURLTests {
        @Test("user, password, host, port and database; the password from PGPASSWORD when the URL has none")
        func parses() throws {
            let full = try PostgresURL("postgres://carteira:s%40cret@db1.example:6543/ledger")
            #expect(full.user == "carteira")
            #expect(full.password == "s@cret")
            #expect(full.host == "db1.example")
            #expect(full.port == 6543)
            #expect(full.database == "ledger")
            #expect(full.description == "postgres://carteira@db1.example:6543/ledger")

            let plain = try PostgresURL("postgresql://app@10.0.0.5/carteira", environment: ["PGPASSWORD": "pw"])
            #expect(plain.port == 5432)
            #expect(plain.password == "pw")
            let own = try PostgresURL("postgres://app:mine@10.0.0.5/carteira", environment: ["PGPASSWORD": "pw"])
            #expect(own.password == "mine")
        }

        @Test("a malformed URL is refused with a message naming what is missing")
        func refuses() {
            let cases = [
                ("postgres://db1:5432/ledger", "user"),
                ("postgres://app@db1:5432", "database"),
                ("postgres://app@db1:5432/", "database"),
                ("postgres://app@:5432/ledger", "host"),
                ("postgres://app@db1:99999/ledger", "port"),
                ("postgres://app@db1:x/ledger", "port"),
                ("postgres://%zz@db1/ledger", "user"),
                ("mysql://app@db1/ledger", "postgres://"),
            ]
            for (text, word) in cases {
                #expect(throws: PostgresURLError.self, "\(text)") { try PostgresURL(text) }
                do {
                    _ = try PostgresURL(text)
                } catch {
                    #expect(error.description.contains(word), "\(text): \(error)")
                }
            }
        }
    }
#endif
