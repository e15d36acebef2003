import CarteiraCore
import Crypto

/// Fresh secrets from a cryptographic random source (swift-crypto's).
enum SecureRandom {
    static func bytes16() -> [UInt8] {
        SymmetricKey(size: .bits128).withUnsafeBytes { Array($0) }
    }

    static func token() -> Token { Token(randomBytes: bytes16()) }

    static func key() -> PaymentKey { PaymentKey(randomBytes: bytes16()) }

    static func digest(of token: Token) -> TokenDigest {
        let hash = SHA256.hash(data: Array(token.text.utf8))
        // SHA-256 hex is always 64 lower-case hex digits.
        guard let digest = TokenDigest(lowerHex(hash)) else { preconditionFailure("SHA-256 hex has the digest form") }
        return digest
    }
}
