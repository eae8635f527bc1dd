import Foundation

/// One row of the lease table: who drives a canary, and until when.
///
/// With several proxies on one store, exactly one may drive a canary; the others stand by and take over once the
/// holder stops renewing, which is how a dead proxy's canary gets a new driver.
public struct Lease: Sendable, Codable, Equatable {
    /// The holder's identity, unique per running proxy (host, pid and start time, say).
    ///
    /// Unique per process, not per host, so a restarted proxy does not inherit a lease it cannot know it holds.
    public var holder: String

    /// When the lease lapses unless renewed.
    ///
    /// At and after this instant anyone may take it.
    public var expiresAt: Date

    /// Creates a lease row.
    ///
    /// See the properties.
    public init(holder: String, expiresAt: Date) {
        self.holder = holder
        self.expiresAt = expiresAt
    }

    /// Whether the lease is still held at `now`.
    ///
    /// The boundary belongs to the taker, so two proxies never both consider themselves holders at one instant.
    public func isLive(at now: Date) -> Bool {
        now < self.expiresAt
    }

    /// What `me` should do, given the stored row (nil: none) at `now`.
    ///
    /// `wasHolder` is whether `me` drove the canary until now; it turns "someone else holds it" into `.lost`, the
    /// signal to stop driving at once. Every write decision carries the row it replaces, for a compare-and-swap.
    public static func decide(
        row: Lease?,
        me: String,
        now: Date,
        ttl: TimeInterval,
        wasHolder: Bool
    ) -> LeaseDecision {
        let mine = Lease(holder: me, expiresAt: now.addingTimeInterval(ttl))
        guard let row else {
            return .acquire(mine, replacing: nil)
        }
        if row.isLive(at: now) {
            if row.holder == me {
                return .renew(mine, replacing: row)
            }
            return wasHolder
                ? .lost(to: row.holder, until: row.expiresAt) : .standBy(holder: row.holder, until: row.expiresAt)
        }
        return .acquire(mine, replacing: row)
    }
}

/// What a proxy does about a canary's lease.
///
/// A write is a compare-and-swap on the row it replaces: if the row changed since it was read, another proxy won and
/// this one treats the outcome as `.standBy` (or `.lost`).
public enum LeaseDecision: Sendable, Equatable {
    /// Write `lease` where `replacing` was (nil: insert): there is no lease or it expired. Then drive, after reloading
    /// the canary's state from the store.
    ///
    /// Also the answer to a proxy whose own lease expired: another one may have driven meanwhile, so it reloads too.
    case acquire(Lease, replacing: Lease?)

    /// Extend my live lease to `lease.expiresAt`, replacing `replacing`; keep driving.
    ///
    /// Renew well before expiry (every ttl/3, say) so that a slow store write does not hand the canary over.
    case renew(Lease, replacing: Lease)

    /// Another proxy holds a live lease until `until`; do not drive, check again then.
    ///
    /// No takeover before expiry, however long the holder has been quiet.
    case standBy(holder: String, until: Date)

    /// I drove the canary, but another proxy holds a live lease now: stop driving at once.
    ///
    /// Happens after this proxy stalled past its expiry and another took over.
    case lost(to: String, until: Date)
}
