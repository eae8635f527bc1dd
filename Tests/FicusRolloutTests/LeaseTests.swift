import FicusRollout
import Foundation
import Testing

@Suite("Canary lease")
struct LeaseTests {
    let ttl: TimeInterval = 15

    @Test("With no row, the first proxy acquires")
    func acquiresFreeLease() {
        let decision = Lease.decide(row: nil, me: "a", now: Fixtures.at(0), ttl: self.ttl, wasHolder: false)
        #expect(decision == .acquire(Lease(holder: "a", expiresAt: Fixtures.at(15)), replacing: nil))
    }

    @Test("The holder renews its live lease, replacing the row it read")
    func holderRenews() {
        let row = Lease(holder: "a", expiresAt: Fixtures.at(15))
        let decision = Lease.decide(row: row, me: "a", now: Fixtures.at(5), ttl: self.ttl, wasHolder: true)
        #expect(decision == .renew(Lease(holder: "a", expiresAt: Fixtures.at(20)), replacing: row))
    }

    @Test("No takeover before expiry, however close; takeover at and after it")
    func takeoverOnlyAfterExpiry() {
        let row = Lease(holder: "a", expiresAt: Fixtures.at(15))
        for now in [0, 10, 14.999] {
            let decision = Lease.decide(row: row, me: "b", now: Fixtures.at(now), ttl: self.ttl, wasHolder: false)
            #expect(decision == .standBy(holder: "a", until: Fixtures.at(15)))
        }
        for now in [15.0, 60] {
            let decision = Lease.decide(row: row, me: "b", now: Fixtures.at(now), ttl: self.ttl, wasHolder: false)
            #expect(decision == .acquire(Lease(holder: "b", expiresAt: Fixtures.at(now + 15)), replacing: row))
        }
    }

    @Test("A holder that stalled past expiry and was taken over learns it lost the lease")
    func stalledHolderLoses() {
        let row = Lease(holder: "b", expiresAt: Fixtures.at(40))
        let decision = Lease.decide(row: row, me: "a", now: Fixtures.at(30), ttl: self.ttl, wasHolder: true)
        #expect(decision == .lost(to: "b", until: Fixtures.at(40)))
    }

    @Test("A holder whose own lease expired reacquires instead of renewing, so it reloads the state")
    func expiredOwnLeaseReacquires() {
        let row = Lease(holder: "a", expiresAt: Fixtures.at(15))
        let decision = Lease.decide(row: row, me: "a", now: Fixtures.at(20), ttl: self.ttl, wasHolder: true)
        #expect(decision == .acquire(Lease(holder: "a", expiresAt: Fixtures.at(35)), replacing: row))
    }
}
