import Foundation

/// Where a store lives, parsed from the text of `--store` or `FICUS_STORE`: an SQLite file or a PostgreSQL database.
///
/// One parser for every command, so that `ficus flip --store postgres://…` and `ficus serve --store postgres://…`
/// cannot disagree on what a store text means (docs/FLEET.md).
public enum StoreLocation: Sendable, Equatable, CustomStringConvertible {
    /// An SQLite file: a plain path or `sqlite:PATH`.
    case sqlite(path: String)
    /// A PostgreSQL database: `postgres://` or `postgresql://`.
    case postgres(PostgresStoreURL)

    /// Parses `text`; a plain path (or `sqlite:PATH`) is SQLite, `postgres://` and `postgresql://` are PostgreSQL.
    ///
    /// Throws `StoreLocationError` naming the part that is wrong, with any password replaced by `***`.
    public init(parsing text: String) throws {
        if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
            self = .postgres(try PostgresStoreURL(parsing: text))
        } else if text.hasPrefix("sqlite:") {
            let path = String(text.dropFirst("sqlite:".count))
            guard !path.isEmpty else {
                throw StoreLocationError(text: text, problem: "'sqlite:' needs a file path after it")
            }
            self = .sqlite(path: path)
        } else if let colon = text.range(of: "://") {
            let scheme = text[..<colon.lowerBound]
            throw StoreLocationError(
                text: PostgresStoreURL.redacting(text),
                problem: "unknown store scheme '\(scheme)': use a file path, sqlite:PATH or postgres://…"
            )
        } else {
            guard !text.isEmpty else {
                throw StoreLocationError(text: text, problem: "the store is empty: give a file path or postgres://…")
            }
            self = .sqlite(path: text)
        }
    }

    /// The store as it may be printed and logged: the path, or the URL without its password.
    public var description: String {
        switch self {
        case .sqlite(let path): return path
        case .postgres(let url): return url.description
        }
    }
}

/// A `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=MODE]` store address.
///
/// The password is kept for connecting and never shown: `description` replaces it with `***`.
public struct PostgresStoreURL: Sendable, Equatable, CustomStringConvertible {
    /// How the connection uses TLS (libpq's `sslmode` words; docs/FLEET.md says which are supported).
    public enum SSLMode: String, Sendable, CaseIterable {
        case disable
        case prefer
        case require
        case verifyFull = "verify-full"
    }

    public var user: String
    public var password: String?
    public var host: String
    public var port: Int
    public var database: String
    public var sslMode: SSLMode
    /// `sslrootcert=PATH`: the CA certificates (PEM) that `verify-full` trusts instead of the system's roots.
    public var sslRootCert: String?
    /// `passfile=PATH`: the password file to look the password up in (libpq's `.pgpass` format).
    public var passFile: String?

    /// Parses the URL; the error names the part that is wrong (user, host, port, database, parameter).
    public init(parsing text: String) throws {
        let shown = Self.redacting(text)
        func fail(_ problem: String) -> StoreLocationError {
            StoreLocationError(text: shown, problem: problem)
        }
        guard let schemeEnd = text.range(of: "://") else {
            throw fail("expected postgres://USER@HOST:PORT/DATABASE")
        }
        var rest = Substring(text[schemeEnd.upperBound...])
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        guard let at = rest.lastIndex(of: "@") else {
            throw fail("the user is missing: expected postgres://USER@HOST:PORT/DATABASE")
        }
        let userInfo = rest[..<at]
        let hostAndPath = rest[rest.index(after: at)...]
        let userPart: Substring
        var password: String?
        if let colon = userInfo.firstIndex(of: ":") {
            userPart = userInfo[..<colon]
            password = String(userInfo[userInfo.index(after: colon)...]).removingPercentEncoding
            guard password != nil else {
                throw fail("the password is not valid percent-encoding")
            }
        } else {
            userPart = userInfo
        }
        guard let user = String(userPart).removingPercentEncoding, !user.isEmpty else {
            throw fail("the user is missing or not valid percent-encoding")
        }
        guard let slash = hostAndPath.firstIndex(of: "/") else {
            throw fail("the database is missing: expected …@HOST:PORT/DATABASE")
        }
        let database = String(hostAndPath[hostAndPath.index(after: slash)...]).removingPercentEncoding ?? ""
        guard !database.isEmpty, !database.contains("/") else {
            throw fail("the database name is missing or contains '/'")
        }
        var hostPort = hostAndPath[..<slash]
        var port = 5432
        if hostPort.hasPrefix("[") {
            // An IPv6 literal: [::1]:5432.
            guard let close = hostPort.firstIndex(of: "]") else {
                throw fail("the host '\(hostPort)' opens '[' without closing it")
            }
            let after = hostPort[hostPort.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let parsed = Int(after.dropFirst()), (1...65535).contains(parsed) else {
                    throw fail("the port '\(after.dropFirst())' is not a number from 1 to 65535")
                }
                port = parsed
            }
            hostPort = hostPort[hostPort.index(after: hostPort.startIndex)..<close]
        } else if let colon = hostPort.lastIndex(of: ":") {
            let text = hostPort[hostPort.index(after: colon)...]
            guard let parsed = Int(text), (1...65535).contains(parsed), text.allSatisfy(\.isASCII) else {
                throw fail("the port '\(text)' is not a number from 1 to 65535")
            }
            port = parsed
            hostPort = hostPort[..<colon]
        }
        guard !hostPort.isEmpty else {
            throw fail("the host is missing: expected …@HOST:PORT/DATABASE")
        }
        var sslMode = SSLMode.prefer
        var sslRootCert: String?
        var passFile: String?
        var seen: Set<String> = []
        for parameter in query.split(separator: "&") where !parameter.isEmpty {
            let pair = parameter.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(pair[0])
            guard let value = (pair.count > 1 ? String(pair[1]) : "").removingPercentEncoding else {
                throw fail("the value of '\(name)' is not valid percent-encoding")
            }
            guard seen.insert(name).inserted else {
                throw fail("parameter '\(name)' is given twice")
            }
            switch name {
            case "sslmode":
                guard let mode = SSLMode(rawValue: value) else {
                    let known = SSLMode.allCases.map(\.rawValue).joined(separator: ", ")
                    throw fail("sslmode '\(value)' is not supported (use one of: \(known))")
                }
                sslMode = mode
            case "sslrootcert", "passfile":
                guard !value.isEmpty else {
                    throw fail("\(name) needs a file path")
                }
                if name == "sslrootcert" { sslRootCert = value } else { passFile = value }
            default:
                throw fail("unknown parameter '\(name)' (supported: sslmode, sslrootcert, passfile)")
            }
        }
        if sslRootCert != nil, sslMode != .verifyFull {
            throw fail("sslrootcert is only used with sslmode=verify-full (sslmode is \(sslMode.rawValue))")
        }
        self.user = user
        self.password = password
        self.host = String(hostPort)
        self.port = port
        self.database = database
        self.sslMode = sslMode
        self.sslRootCert = sslRootCert
        self.passFile = passFile
    }

    public init(
        user: String,
        password: String? = nil,
        host: String,
        port: Int = 5432,
        database: String,
        sslMode: SSLMode = .prefer
    ) {
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.database = database
        self.sslMode = sslMode
    }

    /// The URL with the password replaced by `***`; what messages and logs show.
    public var description: String {
        let host = self.host.contains(":") ? "[\(self.host)]" : self.host
        let password = self.password == nil ? "" : ":***"
        var text = "postgres://\(self.user)\(password)@\(host):\(self.port)/\(self.database)?sslmode=\(self.sslMode.rawValue)"
        if let root = self.sslRootCert {
            text += "&sslrootcert=\(root)"
        }
        if let file = self.passFile {
            text += "&passfile=\(file)"
        }
        return text
    }

    /// The same URL naming another database on the same server (tests create and drop databases of their own).
    public func database(_ name: String) -> PostgresStoreURL {
        var copy = self
        copy.database = name
        return copy
    }

    /// `text` with whatever stands between `user:` and the last `@` replaced by `***`.
    ///
    /// For messages about a URL that did not parse: even a malformed one may carry a real password.
    public static func redacting(_ text: String) -> String {
        guard let schemeEnd = text.range(of: "://") else {
            return text
        }
        let authorityEnd = text[schemeEnd.upperBound...].firstIndex(where: { $0 == "?" }) ?? text.endIndex
        guard let at = text[schemeEnd.upperBound..<authorityEnd].lastIndex(of: "@"),
            let colon = text[schemeEnd.upperBound..<at].firstIndex(of: ":")
        else {
            return text
        }
        return String(text[..<text.index(after: colon)]) + "***" + String(text[at...])
    }
}

/// A store text that is neither a path nor a valid store URL.
public struct StoreLocationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The text as given, with any password replaced by `***`.
    public var text: String
    /// What is wrong, naming the part.
    public var problem: String

    public var description: String {
        "store '\(self.text)': \(self.problem)"
    }
}
