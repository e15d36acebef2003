import ArgumentParser
import CarteiraJournal
import Foundation

/// `carteira-server journal verify|replay|repair [DIR]`: the off-line checks
/// of JOURNAL.md. Verify and replay only read; repair takes the lock.
struct JournalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "journal",
        abstract: "Check, print or repair a journal off-line.",
        subcommands: [Verify.self, Replay.self, Repair.self, Export.self])
}

/// The journal directory argument every subcommand takes.
struct JournalDirectory: ParsableArguments {
    @Argument(help: "The journal directory, or postgres://USER@HOST:PORT/DB.")
    var directory = "journal"
}

extension JournalCommand {
    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check every line, the hash chain and the ledger rules; print a summary.")

        @OptionGroup var journal: JournalDirectory

        func run() throws {
            if PostgresJournal.isURL(journal.directory) {
                return try PostgresJournal.offline(journal.directory, output: .summary)
            }
            let summary = try reportingFailure { try JournalVerifier.verify(directory: journal.directory) }
            print(JournalReport.summary(summary, directory: journal.directory), terminator: "")
        }
    }

    struct Replay: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rebuild the state and print every machine with its balance.")

        enum Format: String, ExpressibleByArgument, CaseIterable {
            case table
            case json
        }

        @OptionGroup var journal: JournalDirectory

        @Option(help: "table (money as R$) or json (centavos).")
        var format = Format.table

        func run() throws {
            if PostgresJournal.isURL(journal.directory) {
                return try PostgresJournal.offline(journal.directory, output: format == .json ? .json : .table)
            }
            let summary = try reportingFailure { try JournalVerifier.verify(directory: journal.directory) }
            switch format {
            case .table: print(JournalReport.machineTable(summary.ledger), terminator: "")
            case .json: print(JournalReport.machineJSON(summary.ledger), terminator: "")
            }
        }
    }

    struct Repair: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cut a torn tail, keeping the cut bytes beside the journal; refuses while a server runs.")

        @OptionGroup var journal: JournalDirectory

        func run() throws {
            let cut = try reportingFailure { try JournalRepair.repair(directory: journal.directory) }
            if let cut {
                print("cut \(cut.bytes) bytes of torn tail at byte \(cut.offset), kept in ledger.journal.torn-*")
            } else {
                print("nothing to repair: the journal ends with a whole line")
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
                return try PostgresJournal.offline(journal.directory, output: .export)
            }
            _ = try reportingFailure { try JournalVerifier.verify(directory: journal.directory) }
            let path = journal.directory + "/" + Journal.fileName
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

/// Runs `body`; on an error prints it to stderr and exits with 1.
private func reportingFailure<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode.failure
    }
}
