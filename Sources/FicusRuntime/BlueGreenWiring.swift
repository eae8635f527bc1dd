import FicusCore
import FicusRollout
import FicusStore
import Foundation

/// Reads an upstream's blue-green state, runs one event through `BlueGreenStateMachine` and writes the outcome.
///
/// One place builds the state from the configuration plus the stored row, so every command decides on the same facts.
public enum BlueGreenWiring {
    /// An event the state machine refused; nothing was written. Its description is the machine's message.
    public struct Refused: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// What one applied event wrote.
    public struct Outcome: Sendable {
        /// The audit lines, in order.
        public var lines: [String]
        /// The revision written when the slots changed, nil for a check.
        public var revision: StoredRevision?
    }

    /// The newest revision number, the upstream's state and its stored row's version (0 when none).
    ///
    /// `creating` turns a plain upstream into slots with its addresses active and `creating` idle and empty; nil
    /// refuses a plain upstream.
    public static func load(
        upstream name: String,
        store: any ConfigurationStore & BlueGreenStore,
        creating: BlueGreenSlots.Slot?
    ) async throws -> (revision: Int, state: BlueGreenState, version: Int) {
        let latest = try await store.latest()
        let configuration = latest?.configuration ?? Configuration()
        let upstream = configuration.upstreams[try configuration.upstreamIndex(name)]
        let slots: BlueGreenSlots
        if let existing = upstream.slots {
            slots = existing
        } else if let idle = creating {
            let live = upstream.addresses
            slots = BlueGreenSlots(
                blue: idle == .blue ? [] : live,
                green: idle == .green ? [] : live,
                active: idle.other
            )
        } else {
            throw Refused(
                description: "upstream '\(name)' has no blue and green slots; 'ficus bluegreen deploy' creates them"
            )
        }
        var state = BlueGreenState(upstream: name, slots: slots)
        let row = try await store.blueGreen(upstream: name)
        if let row, let stored = try? JSONDecoder().decode(BlueGreenState.self, from: row.stateJSON) {
            state.blueCheck = stored.blueCheck
            state.greenCheck = stored.greenCheck
            // An edit outside these commands may have replaced the previous slot's addresses: never go back to them.
            if let previous = stored.previousActive, stored.slots[previous] == slots[previous] {
                state.previousActive = previous
            }
        }
        return (latest?.number ?? 0, state, row?.version ?? 0)
    }

    /// Runs the event `makeEvent` returns for the current state and stores the outcome: one revision for a slot
    /// change, an audit line for a check; a refusal throws `Refused` and changes nothing.
    public static func apply(
        upstream name: String,
        store: any ConfigurationStore & BlueGreenStore,
        author: ChangeAuthor,
        creatingSlotsFor idle: BlueGreenSlots.Slot?,
        makeEvent: (BlueGreenState) -> BlueGreenEvent
    ) async throws -> Outcome {
        let (revision, state, version) = try await Self.load(upstream: name, store: store, creating: idle)
        var machine = BlueGreenStateMachine(state: state)
        let actions = machine.handle(makeEvent(state))
        var lines: [String] = []
        var changesSlots = false
        for action in actions {
            switch action {
            case .refuse(let message):
                throw Refused(description: message)
            case .record(let line):
                lines.append(line)
            case .setSlotAddresses, .setActive:
                changesSlots = true
            }
        }
        let slots = machine.state.slots
        var change: (@Sendable (inout Configuration) throws -> Void)?
        if changesSlots {
            change = { configuration in
                let index = try configuration.upstreamIndex(name)
                configuration.upstreams[index].slots = slots
            }
        }
        var written = author
        let summary = lines.joined(separator: "; ")
        written.reason = author.reason.isEmpty ? summary : "\(author.reason) (\(summary))"
        let stored = try await store.writeBlueGreen(
            upstream: name,
            stateJSON: try JSONEncoder().encode(machine.state),
            expectVersion: version,
            expectRevision: revision,
            author: written,
            change: change
        )
        return Outcome(lines: lines, revision: stored)
    }
}
