import CarteiraCore
import CarteiraJournal
import CarteiraTestSupport

/// The simulation's one source of randomness: every decision of a run, the
/// clients' and the disk's, is drawn from it in a fixed order, so a seed
/// replays exactly.
final class SimRandom: Sendable {
    private let generator: Locked<SplitMix64>

    init(seed: UInt64) {
        generator = Locked(SplitMix64(seed: seed))
    }

    func next() -> UInt64 { generator.withLock { $0.next() } }

    /// 0..<bound (bound > 0).
    func below(_ bound: Int) -> Int { Int(next() % UInt64(max(1, bound))) }

    func chance(_ probability: Double) -> Bool {
        probability > 0 && Double(next() >> 11) / Double(1 << 53) < probability
    }

    func pick<T>(_ items: [T]) -> T? { items.isEmpty ? nil : items[below(items.count)] }

    func range(_ range: ClosedRange<Int>) -> Int { range.lowerBound + below(range.count) }
}

/// How often each fault happens in one run. Every seed draws its own rates
/// (swarm testing, as TigerBeetle's VOPR does): some runs never fault, some
/// fault at almost every write.
struct FaultRates: CustomStringConvertible {
    var appendFails = 0.0
    var appendPartial = 0.0
    var syncFails = 0.0
    var crashInWrite = 0.0
    var crashInSync = 0.0
    /// At any step, besides the disk's own.
    var processCrash = 0.0
    var powerLoss = 0.0

    static func draw(_ random: SimRandom) -> FaultRates {
        func rate(_ high: Double) -> Double {
            switch random.below(4) {
            case 0: 0
            case 1: high / 10
            case 2: high / 3
            default: high
            }
        }
        if random.below(8) == 0 { return FaultRates() }
        return FaultRates(
            appendFails: rate(0.03), appendPartial: rate(0.03), syncFails: rate(0.03), crashInWrite: rate(0.02),
            crashInSync: rate(0.02), processCrash: rate(0.01), powerLoss: rate(0.01))
    }

    var description: String {
        "append fails \(appendFails), partial \(appendPartial), sync fails \(syncFails), crash in write \(crashInWrite), crash in sync \(crashInSync), process crash \(processCrash), power loss \(powerLoss)"
    }
}

/// Faults injected, by kind, over one run or many.
struct FaultCounts: CustomStringConvertible {
    var appendFailed = 0
    var appendPartial = 0
    var syncFailed = 0
    var crashInWrite = 0
    var crashInSync = 0
    var processCrashes = 0
    var powerLosses = 0
    var zeroFilledTails = 0
    var startFailures = 0
    var restarts = 0
    var gracefulRestarts = 0

    static func + (lhs: FaultCounts, rhs: FaultCounts) -> FaultCounts {
        FaultCounts(
            appendFailed: lhs.appendFailed + rhs.appendFailed, appendPartial: lhs.appendPartial + rhs.appendPartial,
            syncFailed: lhs.syncFailed + rhs.syncFailed, crashInWrite: lhs.crashInWrite + rhs.crashInWrite,
            crashInSync: lhs.crashInSync + rhs.crashInSync, processCrashes: lhs.processCrashes + rhs.processCrashes,
            powerLosses: lhs.powerLosses + rhs.powerLosses, zeroFilledTails: lhs.zeroFilledTails + rhs.zeroFilledTails,
            startFailures: lhs.startFailures + rhs.startFailures, restarts: lhs.restarts + rhs.restarts,
            gracefulRestarts: lhs.gracefulRestarts + rhs.gracefulRestarts)
    }

    var description: String {
        "write failed \(appendFailed), partial write \(appendPartial), sync failed \(syncFailed), crash in a write \(crashInWrite), crash in a sync \(crashInSync), process crash \(processCrashes), power loss \(powerLosses) (zero-filled tail \(zeroFilledTails)), start-up failed \(startFailures), restarts \(restarts) (graceful \(gracefulRestarts))"
    }
}

/// The journal file as a disk holds it, across simulated process lives:
/// `content` is what a read of the file returns (the page cache), and its
/// first `stable` bytes are on stable storage. A process crash keeps
/// `content`; a power loss keeps the stable bytes, a random prefix of the
/// rest and possibly a run of zeros (space allocated but never written).
final class SimDisk: Sendable {
    struct State {
        var content: [UInt8] = []
        var stable = 0
        /// A fault asked for the process to die in the middle of a write or
        /// sync: the harness kills the server when the step returns.
        var crashRequested = false
        /// The lowest length the file was ever cut to since `stable` last
        /// grew past it: cutting below what the model read as stable lines
        /// is a lost acknowledgement.
        var lowestCut: Int?
        var rates = FaultRates()
        var faultsOn = true
        var counts = FaultCounts()
    }

    let state = Locked(State())
    let random: SimRandom

    init(random: SimRandom, rates: FaultRates) {
        self.random = random
        state.withLock { $0.rates = rates }
    }

    var content: [UInt8] { state.withLock { $0.content } }
    var stableCount: Int { state.withLock { $0.stable } }
    var counts: FaultCounts { state.withLock { $0.counts } }

    func stableBytes(from offset: Int) -> ArraySlice<UInt8> {
        state.withLock { state in
            let start = min(offset, state.stable)
            return state.content[start..<state.stable]
        }
    }

    func takeCrashRequest() -> Bool {
        state.withLock { state in
            defer { state.crashRequested = false }
            return state.crashRequested
        }
    }

    func takeLowestCut() -> Int? {
        state.withLock { state in
            defer { state.lowestCut = nil }
            return state.lowestCut
        }
    }

    func setFaults(_ on: Bool) { state.withLock { $0.faultsOn = on } }

    func count(_ body: (inout FaultCounts) -> Void) { state.withLock { body(&$0.counts) } }

    /// A process crash (kill -9): the kernel keeps what was written.
    func processCrash() {
        state.withLock { $0.counts.processCrashes += 1 }
    }

    /// The machine loses power: what was not synced survives only in part.
    func powerLoss() {
        let random = random
        state.withLock { state in
            state.counts.powerLosses += 1
            let unstable = state.content.count - state.stable
            let kept = unstable == 0 ? 0 : random.below(unstable + 1)
            var survivor = Array(state.content[0..<(state.stable + kept)])
            if unstable > kept, random.below(3) == 0 {
                survivor += [UInt8](repeating: 0, count: random.range(1...(unstable - kept)))
                state.counts.zeroFilledTails += 1
            }
            state.content = survivor
            state.stable = survivor.count
        }
    }

    fileprivate func append(_ bytes: [UInt8]) throws(JournalError) {
        let random = random
        try state.withLock { (state) throws(JournalError) in
            let rates = state.faultsOn ? state.rates : FaultRates()
            if random.chance(rates.crashInWrite) {
                state.counts.crashInWrite += 1
                state.content += bytes.prefix(random.below(bytes.count + 1))
                state.crashRequested = true
                throw .io("write: the process died (simulated)")
            }
            if random.chance(rates.appendFails) {
                state.counts.appendFailed += 1
                throw .io("write ledger.journal: No space left on device (simulated)")
            }
            if bytes.count > 1, random.chance(rates.appendPartial) {
                state.counts.appendPartial += 1
                state.content += bytes.prefix(random.range(1...(bytes.count - 1)))
                throw .io("write ledger.journal: No space left on device (simulated, after a short write)")
            }
            state.content += bytes
        }
    }

    fileprivate func sync() throws(JournalError) {
        let random = random
        try state.withLock { (state) throws(JournalError) in
            let rates = state.faultsOn ? state.rates : FaultRates()
            if random.chance(rates.crashInSync) {
                state.counts.crashInSync += 1
                // The sync may or may not have reached the disk.
                if random.below(2) == 0 { state.stable = state.content.count }
                state.crashRequested = true
                throw .io("sync: the process died (simulated)")
            }
            if random.chance(rates.syncFails) {
                state.counts.syncFailed += 1
                throw .io("sync ledger.journal: Input/output error (simulated)")
            }
            state.stable = state.content.count
        }
    }

    fileprivate func truncate(to offset: Int64) throws(JournalError) {
        let random = random
        try state.withLock { (state) throws(JournalError) in
            let rates = state.faultsOn ? state.rates : FaultRates()
            if random.chance(rates.appendFails) {
                state.counts.appendFailed += 1
                throw .io("truncate ledger.journal: Input/output error (simulated)")
            }
            let length = Int(offset)
            precondition(length >= 0 && length <= state.content.count, "truncate within the file")
            state.content.removeLast(state.content.count - length)
            state.stable = min(state.stable, length)
            state.lowestCut = min(state.lowestCut ?? length, length)
        }
    }
}

/// One process life's handle on the simulated disk, behind the journal's
/// storage seam: the real writer and `Journal.open` write through it.
final class SimStorage: JournalStorage {
    let disk: SimDisk

    init(disk: SimDisk) {
        self.disk = disk
    }

    func append(_ bytes: [UInt8]) throws { try disk.append(bytes) }
    func sync() throws { try disk.sync() }
    func truncate(to offset: Int64) throws { try disk.truncate(to: offset) }
    func size() throws -> Int64 { Int64(disk.content.count) }
}
