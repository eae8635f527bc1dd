import FicusCore
import Foundation

/// A configuration about to become revision `number`: encoded, read back, validated and compared with the previous
/// one, before either backend writes a row.
///
/// One place for the checks every commit makes (DESIGN.md, "Configuration lifecycle"), so that the SQLite and the
/// PostgreSQL store refuse and describe a change in exactly the same words.
struct RevisionDraft {
    /// The JSON snapshot to store.
    var snapshot: String
    /// The configuration as it reads back from `snapshot`: what `revision(_:)` and watchers will load.
    var configuration: FicusCore.Configuration
    /// The one-line summary stored with the revision.
    var summary: String
    /// The audit entry's detail: the summary given (a rollback's) and every diff line.
    var detail: String
    /// The routes whose definition changed.
    var routesChanged: [String]

    /// Throws `ConfigurationInvalid` when the result is invalid and `StoreError.noChange` when it equals `previous`.
    ///
    /// `location` names the store in the error of a snapshot that does not read back.
    init(
        _ configuration: FicusCore.Configuration,
        number: Int,
        previous: FicusCore.Configuration,
        summary: String?,
        location: String
    ) throws {
        let snapshot = try SQLiteConfigurationStore.encodeSnapshot(configuration)
        let stored = try SQLiteConfigurationStore.decodeSnapshot(snapshot, revision: number, path: location)
        let errors = stored.validate()
        guard errors.isEmpty else {
            throw ConfigurationInvalid(errors: errors)
        }
        let diff = RevisionDiff(from: previous, to: stored)
        guard !diff.isEmpty else {
            throw StoreError.noChange
        }
        self.snapshot = snapshot
        self.configuration = stored
        self.detail = ((summary.map { [$0] } ?? []) + diff.lines).joined(separator: "\n")
        self.summary = summary ?? diff.summary()
        self.routesChanged = diff.routesChanged
    }
}
