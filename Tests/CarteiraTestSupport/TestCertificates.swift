import Foundation

/// A certificate authority and a server certificate it signed, made at run
/// time with the `openssl` command (no key material is committed). The
/// server certificate names `127.0.0.1` (an IP entry) and nothing else.
public struct TestCertificates: Sendable {
    public let caCertificate: String
    public let serverCertificate: String
    public let serverKey: String
    /// A second authority that signed nothing here: trusting it alone must
    /// refuse the server.
    public let otherCACertificate: String
    /// Signed by the CA for the DNS name `carteira.example` only: right
    /// authority, wrong name for 127.0.0.1 or localhost.
    public let misnamedCertificate: String
    public let misnamedKey: String

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }

    /// Writes the files into `directory`.
    public init(in directory: String) throws {
        func path(_ name: String) -> String { directory + "/" + name }
        caCertificate = path("ca.pem")
        serverCertificate = path("server.pem")
        serverKey = path("server.key")
        otherCACertificate = path("other-ca.pem")
        misnamedCertificate = path("misnamed.pem")
        misnamedKey = path("misnamed.key")
        let extensions = path("server.ext")
        try
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
            .write(toFile: extensions, atomically: true, encoding: .utf8)
        let ecKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        try Self.openssl(
            ["req", "-x509"] + ecKey + [
                "-keyout", path("ca.key"), "-out", caCertificate,
                "-days", "2", "-subj", "/CN=Carteira test CA", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign",
            ])
        try Self.openssl(
            ["req", "-x509"] + ecKey + [
                "-keyout", path("other-ca.key"), "-out", otherCACertificate,
                "-days", "2", "-subj", "/CN=Some other CA", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign",
            ])
        try Self.openssl(
            ["req", "-new"] + ecKey + [
                "-keyout", serverKey, "-out", path("server.csr"),
                "-subj", "/CN=127.0.0.1",
            ])
        try Self.openssl([
            "x509", "-req", "-in", path("server.csr"), "-CA", caCertificate, "-CAkey", path("ca.key"),
            "-CAcreateserial", "-out", serverCertificate, "-days", "2", "-extfile", extensions,
        ])
        let misnamedExtensions = path("misnamed.ext")
        try "subjectAltName=DNS:carteira.example\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            .write(toFile: misnamedExtensions, atomically: true, encoding: .utf8)
        try Self.openssl(
            ["req", "-new"] + ecKey + [
                "-keyout", misnamedKey, "-out", path("misnamed.csr"),
                "-subj", "/CN=carteira.example",
            ])
        try Self.openssl([
            "x509", "-req", "-in", path("misnamed.csr"), "-CA", caCertificate, "-CAkey", path("ca.key"),
            "-CAcreateserial", "-out", misnamedCertificate, "-days", "2", "-extfile", misnamedExtensions,
        ])
    }

    private static func openssl(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl"] + arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let text = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failure(
                description: "openssl \(arguments.first ?? "") failed: \(String(decoding: text, as: UTF8.self))")
        }
    }
}
