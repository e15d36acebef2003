public import ArgumentParser
public import CarteiraConsole
import CarteiraCore
public import CarteiraJournal
public import CarteiraTerminal
import Foundation

/// `carteira-server journal verify|replay|statement|repair [DIR]`: the
/// off-line checks of JOURNAL.md. Verify, replay and statement only read;
/// repair takes the lock.
struct JournalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "journal",
        abstract: "Check, print or repair a journal off-line.",
        subcommands: [Verify.self, Replay.self, Statement.self, Repair.self, Export.self])
}

/// The journal directory argument every subcommand takes.
struct JournalDirectory: ParsableArguments {
    @Argument(help: "The journal directory, or postgres://USER@HOST:PORT/DB.")
    var directory = "journal"
}

extension OutputFormat: ExpressibleByArgument {}

/// `--at SEQ|TIME` and friends: a `seq`, or a time as `TerminalTime.parse` reads it.
extension PointInTime: ExpressibleByArgument {
    public init?(argument: String) {
        self.init(argument)
    }

    var replayPoint: ReplayPoint {
        switch self {
        case let .seq(seq): .seq(seq)
        case let .time(time): .time(time)
        }
    }
}

/// A time option's value (`--since`, `--until`).
struct TimeArgument: ExpressibleByArgument {
    var timestamp: Timestamp

    init?(argument: String) {
        guard let timestamp = TerminalTime.parse(argument) else { return nil }
        self.timestamp = timestamp
    }

    static var defaultCompletionKind: CompletionKind { .default }
}

extension JournalAnchor: ExpressibleByArgument {
    public init?(argument: String) {
        self.init(argument)
    }
}

extension JournalCommand {
    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check every line, the hash chain and the ledger rules; print a summary and a verdict.",
            discussion: """
                Exit 0 when everything checks (and every --expect holds), 1 otherwise. Write down the \
                last seq and last hash: a later `verify --expect SEQ:HASH` proves nothing before was rewritten.
                """)

        @OptionGroup var journal: JournalDirectory

        @Option(help: "table, csv or json (one array of one object).")
        var format = OutputFormat.table

        @Option(
            name: .customLong("expect"),
            help: ArgumentHelp(
                "Also fail unless line SEQ carries HASH (an earlier head an auditor wrote down). Repeatable.",
                valueName: "seq:hash"))
        var anchors: [JournalAnchor] = []

        func run() throws {
            let report = try reportingFailure {
                try JournalSource.report(journal.directory, expecting: anchors)
            }
            print(JournalRows.render(report, journal: JournalSource.name(journal.directory), format: format))
            guard report.passed else {
                // Also on standard error, for a person reading only that.
                printError("error: \(report.problem?.message ?? "an expected hash is not there")")
                throw ExitCode.failure
            }
        }
    }

    struct Replay: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rebuild the state (now, or as it was at a point) and print every machine with its balance.")

        @OptionGroup var journal: JournalDirectory

        @Option(
            help: ArgumentHelp(
                "Stop after the line with this seq, or after the last line not later than this time "
                    + "(\(TerminalTime.inputForms)). The journal is never changed.",
                valueName: "seq|time"))
        var at: PointInTime?

        @Option(help: "table (money as R$, local times), csv or json (centavos, UTC times).")
        var format = OutputFormat.table

        func run() throws {
            let summary = try reportingFailure { try JournalReplayAt.replay(journal.directory, at: at) }
            let rows = LedgerRows.machines(summary.ledger.machines.values.sorted { $0.name < $1.name })
            var text = rows.render(format, time: TerminalTime.local)
            if format == .table {
                text += "\n" + JournalRows.footer(rows: rows.rows.count, summary: summary, asked: at)
            }
            print(text)
        }
    }

    struct Statement: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A machine's statement: opening balance, each transfer in and out with its running balance, "
                + "closing balance, totals.")

        @Argument(help: "The machine.")
        var machine: String

        @OptionGroup var journal: JournalDirectory

        @Option(help: ArgumentHelp("From this time on (\(TerminalTime.inputForms)).", valueName: "time"))
        var since: TimeArgument?

        @Option(help: ArgumentHelp("Up to this time.", valueName: "time"))
        var until: TimeArgument?

        @Option(help: "table, csv (one table a spreadsheet opens) or json.")
        var format = OutputFormat.table

        func validate() throws {
            guard MachineName(machine) != nil else { throw ValidationError("\(machine) is not a machine name") }
            if let since, let until, until.timestamp < since.timestamp {
                throw ValidationError("--until is before --since")
            }
        }

        func run() throws {
            let summary = try reportingFailure {
                try JournalReplayAt.replay(journal.directory, at: until.map { .time($0.timestamp) })
            }
            guard let name = MachineName(machine),
                let statement = MachineStatement(
                    ledger: summary.ledger, machine: name, since: since?.timestamp, until: until?.timestamp)
            else {
                let when = until.map { " by \($0.timestamp.iso8601)" } ?? ""
                printError("error: no machine named \(machine)\(when) in \(JournalSource.name(journal.directory))")
                throw ExitCode.failure
            }
            print(statement.render(format, time: TerminalTime.local))
        }
    }

    struct Repair: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cut a torn tail, keeping the cut bytes beside the journal; refuses while a server runs.")

        @OptionGroup var journal: JournalDirectory

        func run() throws {
            let directory = journal.directory
            if PostgresJournal.isURL(directory) {
                printError("error: repair is for a journal file; a PostgreSQL table has no torn tail to cut")
                throw ExitCode.failure
            }
            let cut = try reportingFailure { try JournalRepair.repair(directory: try existingDirectory(directory)) }
            if let cut {
                print(
                    "cut \(cut.bytes) bytes of torn tail at byte \(cut.offset) (line \(cut.line)), kept in \(cut.keptAt)"
                )
            } else {
                print("nothing to repair: \(Journal.path(in: directory)) ends with a whole line")
            }
        }
    }
}

extension JournalCommand {
    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the journal's lines to standard output, after checking them: a file `verify` accepts.")

        @OptionGroup var journal: JournalDirectory

        func run() throws {
            if PostgresJournal.isURL(journal.directory) {
                return try reportingFailure { try PostgresJournal.export(journal.directory) }
            }
            let directory = try existingDirectory(journal.directory)
            _ = try reportingFailure { try JournalVerifier.verify(directory: directory) }
            let path = Journal.path(in: directory)
            guard let handle = FileHandle(forReadingAtPath: path) else {
                FileHandle.standardError.write(Data("error: cannot read \(path)\n".utf8))
                throw ExitCode.failure
            }
            defer { try? handle.close() }
            while let chunk = try handle.read(upToCount: 1 << 16), !chunk.isEmpty {
                FileHandle.standardOutput.write(chunk)
            }
        }
    }
}

/// Replays to a point, or to the end, and says clearly when the point is
/// outside the journal.
enum JournalReplayAt {
    static func replay(_ journal: String, at point: PointInTime?) throws -> VerifySummary {
        let summary = try JournalSource.summary(journal, through: point?.replayPoint)
        switch point {
        case let .seq(seq) where seq > summary.lastSeq:
            throw JournalPointError("the journal ends at seq \(summary.lastSeq), before seq \(seq)")
        case let .time(time) where summary.lastSeq < 0:
            throw JournalPointError("nothing in the journal is at or before \(time.iso8601)")
        default:
            return summary
        }
    }
}

struct JournalPointError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A journal the tools read: a directory (or its file), or a PostgreSQL URL.
enum JournalSource {
    static func report(_ journal: String, expecting anchors: [JournalAnchor]) throws -> VerifyReport {
        if PostgresJournal.isURL(journal) { return try PostgresJournal.report(journal, expecting: anchors) }
        return try JournalVerifier.report(directory: try existingDirectory(journal), expecting: anchors)
    }

    static func summary(_ journal: String, through point: ReplayPoint?) throws -> VerifySummary {
        if PostgresJournal.isURL(journal) { return try PostgresJournal.summary(journal, through: point) }
        return try JournalVerifier.verify(directory: try existingDirectory(journal), through: point)
    }

    /// What the reports call it: the file's path, or the URL (without a password).
    static func name(_ journal: String) -> String {
        if PostgresJournal.isURL(journal) { return PostgresJournal.displayName(journal) }
        return Journal.path(in: (try? existingDirectory(journal)) ?? journal)
    }
}

/// A file path is taken where the directory is expected: its directory.
func existingDirectory(_ path: String) throws -> String {
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
        let parent = (path as NSString).deletingLastPathComponent
        return parent.isEmpty ? "." : parent
    }
    return path
}

/// How the journal tools' reports become rows, shared with the console.
enum JournalRows {
    /// `verify`'s findings: the summary, the anchors, the verdict.
    static func rows(_ report: VerifyReport, journal: String) -> Rows {
        let summary = report.summary
        let anchors = Rows(
            fields: [
                Field("seq", "seq"), Field("expected hash", "expected_hash"), Field("found hash", "found_hash"),
                Field("matches", "matches"),
            ],
            rows: report.anchors.map { result in
                [
                    .integer(result.anchor.seq), .text(result.anchor.hash), result.found.map(Cell.text) ?? .missing,
                    .text(result.matches ? "true" : "false"),
                ]
            })
        return Rows(
            fields: [
                Field("journal", "journal"), Field("events", "events"), Field("machines", "machines"),
                Field("transfers", "transfers"), Field("total money", "total_money_cents"),
                Field("last seq", "last_seq"), Field("last hash", "last_hash"), Field("verdict", "verdict"),
                Field("first bad line", "first_bad_line"), Field("problem", "problem"), Field("anchors", "anchors"),
            ],
            rows: [
                [
                    .text(journal), .integer(Int64(summary.events)),
                    .integer(Int64(summary.machines)), .integer(Int64(summary.transfers)), .money(summary.totalMoney),
                    .integer(summary.lastSeq), .text(summary.lastHash), .text(report.passed ? "ok" : "failed"),
                    report.problem?.line.map { .integer(Int64($0)) } ?? .missing,
                    report.problem.map { .text($0.message) } ?? .missing, .rows(anchors),
                ]
            ])
    }

    static func render(_ report: VerifyReport, journal: String, format: OutputFormat) -> String {
        let rows = rows(report, journal: journal)
        guard format == .table else {
            if format == .json { return rows.renderJSON() }
            // CSV: one row, the anchors as `seq:hash=match` words.
            var flat = rows
            flat.fields.removeLast()
            flat.rows[0].removeLast()
            flat.fields.append(Field("anchors", "anchors"))
            flat.rows[0].append(
                .text(
                    report.anchors.map { "\($0.anchor.seq):\($0.anchor.hash)=\($0.matches ? "ok" : "failed")" }
                        .joined(separator: " ")))
            return flat.renderCSV()
        }
        var record = rows
        // The table: the summary record, one line per anchor, the verdict.
        record.fields.removeLast(4)
        record.rows[0].removeLast(4)
        var lines = [record.renderRecord(time: TerminalTime.local)]
        if report.summary.passedOverIncompleteLine {
            lines.append("note: a live server's incomplete last line was passed over")
        }
        for result in report.anchors {
            let seq = result.anchor.seq
            if result.matches {
                lines.append("expect seq \(seq): ok, the line carries \(result.anchor.hash)")
            } else if let found = result.found {
                lines.append(
                    "expect seq \(seq): FAILED, the line carries \(found), not \(result.anchor.hash):"
                        + " the journal was rewritten at or before seq \(seq)")
            } else {
                lines.append(
                    "expect seq \(seq): FAILED, no good line has seq \(seq) (the journal checks only to seq \(report.summary.lastSeq))"
                )
            }
        }
        if let problem = report.problem {
            lines.append("verdict: FAILED: \(problem.message)")
        } else if report.passed {
            let anchored = report.anchors.isEmpty ? "" : "; every expected hash is there"
            lines.append(
                "verdict: ok: \(report.summary.events) lines, the hash chain and the ledger rules check\(anchored);"
                    + " head seq \(report.summary.lastSeq) hash \(report.summary.lastHash)")
        } else {
            lines.append("verdict: FAILED: an expected hash is not there")
        }
        return lines.joined(separator: "\n")
    }

    /// Under `replay`'s table: how many rows, and the point they are as of.
    static func footer(rows: Int, summary: VerifySummary, asked: PointInTime?) -> String {
        let count = rows == 1 ? "(1 row)" : "(\(rows) rows)"
        let when = summary.lastAt.map { " at \(TerminalTime.localWithZone($0))" } ?? ""
        let point = asked.map { " as asked, \($0)" } ?? ""
        return "\(count) as of seq \(summary.lastSeq)\(when), hash \(summary.lastHash)\(point)"
    }
}

/// Runs `body`; on an error prints it to stderr and exits with 1.
private func reportingFailure<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch {
        printError("error: \(error)")
        throw ExitCode.failure
    }
}
