import Foundation
import GRDB

extension SQLiteConfigurationStore {
    /// The `StoreError` for an SQLite or decoding error; store and validation errors pass unchanged.
    ///
    /// Operators see the cause in their words ("file is not a database", "busy; retry") instead of SQLite's codes.
    static func storeError(_ error: any Error, path: String) -> any Error {
        switch error {
        case is StoreError, is CancellationError:
            return error
        case let error as DatabaseError:
            let message = error.message ?? "\(error)"
            switch error.resultCode {
            case .SQLITE_BUSY, .SQLITE_LOCKED:
                return StoreError.busy(detail: message)
            case .SQLITE_NOTADB:
                return StoreError.unreadable(path: path, detail: "file is not a database")
            case .SQLITE_CORRUPT:
                return StoreError.unreadable(path: path, detail: "the database is damaged (\(message))")
            case .SQLITE_CANTOPEN:
                return StoreError.unreadable(
                    path: path,
                    detail: "cannot open the file (\(message)); check that its directory exists and is writable"
                )
            case .SQLITE_READONLY, .SQLITE_PERM, .SQLITE_AUTH:
                return StoreError.unreadable(path: path, detail: "no permission to write the file (\(message))")
            case .SQLITE_FULL:
                return StoreError.unreadable(path: path, detail: "the disk is full (\(message))")
            case .SQLITE_IOERR:
                return StoreError.unreadable(path: path, detail: "I/O error (\(message))")
            default:
                return StoreError.unreadable(path: path, detail: message)
            }
        case let error as DecodingError:
            return StoreError.unreadable(path: path, detail: "a stored value cannot be decoded (\(error))")
        default:
            return error
        }
    }
}
