import Foundation

extension PostgresStoreURL {
    /// This URL with its password found as libpq finds one (docs/FLEET.md, "Credentials"): the URL's own, else
    /// `PGPASSWORD`, else the first line of the password file that matches host, port, database and user. The
    /// password file is `passfile=` of the URL, else `PGPASSFILE`, else `~/.pgpass`.
    ///
    /// `environment` is the process's, handed in by the CLI (the only place that reads it). A password file named by
    /// the URL or `PGPASSFILE` must exist; `~/.pgpass` may be missing. A password file that others than its owner
    /// may read is refused, as libpq refuses it, with what to do. The password itself never appears in an error.
    public func resolvingPassword(environment: [String: String]) throws -> PostgresStoreURL {
        guard self.password == nil else {
            return self
        }
        var resolved = self
        if let password = environment["PGPASSWORD"], !password.isEmpty {
            resolved.password = password
            return resolved
        }
        let named = self.passFile ?? environment["PGPASSFILE"].flatMap { $0.isEmpty ? nil : $0 }
        let path: String
        if let named {
            path = named
        } else if let home = environment["HOME"], !home.isEmpty {
            path = home + "/.pgpass"
        } else {
            return self
        }
        func fail(_ problem: String) -> StoreLocationError {
            StoreLocationError(text: self.description, problem: "password file '\(path)': \(problem)")
        }
        var status = stat()
        guard stat(path, &status) == 0 else {
            if named == nil, errno == ENOENT {
                return self
            }
            throw fail(errno == ENOENT ? "does not exist" : "cannot be read (\(String(cString: strerror(errno))))")
        }
        guard status.st_mode & S_IFMT == S_IFREG else {
            throw fail("is not a regular file")
        }
        guard status.st_mode & 0o077 == 0 else {
            throw fail("group or others may read it; run 'chmod 0600 \(path)'")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw fail("cannot be read")
        }
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        for (index, line) in lines.enumerated() {
            let text = line.hasSuffix("\r") ? line.dropLast() : line
            if text.isEmpty || text.hasPrefix("#") {
                continue
            }
            let fields = Self.passwordFileFields(text)
            guard fields.count == 5 else {
                throw fail("line \(index + 1): expected HOST:PORT:DATABASE:USER:PASSWORD, found \(fields.count) fields")
            }
            let wanted = [self.host, String(self.port), self.database, self.user]
            if zip(fields.prefix(4), wanted).allSatisfy({ $0 == "*" || $0 == $1 }) {
                resolved.password = fields[4]
                return resolved
            }
        }
        return self
    }

    /// The `:`-separated fields of a password file line, with `\:` and `\\` read as `:` and `\`; as in libpq, the
    /// fifth field (the password) is the rest of the line, colons included.
    static func passwordFileFields(_ line: Substring) -> [String] {
        var fields: [String] = []
        var field = ""
        var escaped = false
        for character in line {
            if escaped {
                field.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == ":", fields.count < 4 {
                fields.append(field)
                field = ""
            } else {
                field.append(character)
            }
        }
        fields.append(field)
        return fields
    }
}
