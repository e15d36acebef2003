/// Why a key was replaced, as the journal writes it in `reason=`.
public enum KeyRotationReason: String, Sendable, Hashable, CaseIterable {
    /// The server's timer replaced a key at its expiry.
    case expired
    /// The machine asked with `ROTATE`.
    case request
    /// The operator used the console's `rotate`.
    case admin
}

/// One accepted change: what the journal stores one a line, and the only
/// thing that changes the ledger.
public struct Event: Sendable, Hashable {
    public var seq: Int64
    public var at: Timestamp
    public var kind: Kind

    public init(seq: Int64, at: Timestamp, kind: Kind) {
        self.seq = seq
        self.at = at
        self.kind = kind
    }

    public enum Kind: Sendable, Hashable {
        /// The first line of every journal.
        case genesis
        case registered(Registration)
        case transfer(Transfer)
        case keyRotated(KeyRotation)
    }

    public struct Registration: Sendable, Hashable {
        public var machine: MachineName
        public var key: PaymentKey
        public var expires: Timestamp
        public var tokenDigest: TokenDigest
        public var balance: Centavos

        public init(
            machine: MachineName, key: PaymentKey, expires: Timestamp, tokenDigest: TokenDigest, balance: Centavos
        ) {
            self.machine = machine
            self.key = key
            self.expires = expires
            self.tokenDigest = tokenDigest
            self.balance = balance
        }
    }

    public struct Transfer: Sendable, Hashable {
        public var tx: TxID
        public var from: MachineName
        public var to: MachineName
        /// The payee key the payer used.
        public var key: PaymentKey
        public var amount: Centavos
        public var requestID: RequestID?

        public init(
            tx: TxID, from: MachineName, to: MachineName, key: PaymentKey, amount: Centavos, requestID: RequestID?
        ) {
            self.tx = tx
            self.from = from
            self.to = to
            self.key = key
            self.amount = amount
            self.requestID = requestID
        }
    }

    public struct KeyRotation: Sendable, Hashable {
        public var machine: MachineName
        public var key: PaymentKey
        public var expires: Timestamp
        public var reason: KeyRotationReason

        public init(machine: MachineName, key: PaymentKey, expires: Timestamp, reason: KeyRotationReason) {
            self.machine = machine
            self.key = key
            self.expires = expires
            self.reason = reason
        }
    }
}
