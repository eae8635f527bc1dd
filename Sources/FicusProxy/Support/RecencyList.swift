/// Values by key, in order of use: the least recently used is the first to go when a bound is reached.
///
/// Pure and not thread-safe (its owners keep it under their locks). The recency list is threaded through an array
/// by index, so a lookup costs one dictionary lookup and a few index moves, and a removed slot is reused: memory
/// stays bounded by the most entries ever held at once. The owner decides the bound (keys for rate limit buckets,
/// bytes for stale answers) and evicts with `removeLeastRecent()`.
struct RecencyList<Key: Hashable, Value> {
    /// One entry and its place in the recency list.
    fileprivate struct Slot {
        var key: Key
        var value: Value?
        /// Towards the most recently used (`head`); -1 at the end.
        var newer: Int
        /// Towards the least recently used (`tail`); -1 at the end.
        var older: Int
    }

    /// Where each key's slot is in `slots`.
    private var index: [Key: Int] = [:]
    private var slots: [Slot] = []
    /// Slots whose entries were removed, for the next insert.
    private var free: [Int] = []
    /// The most recently used slot, or -1.
    private var head = -1
    /// The least recently used slot, or -1.
    private var tail = -1

    init() {}

    /// How many entries there are.
    var count: Int { self.index.count }

    /// Whether `key` has an entry (without making it recently used).
    func contains(_ key: Key) -> Bool { self.index[key] != nil }

    /// The keys from most to least recently used.
    var keysByRecency: [Key] {
        var keys: [Key] = []
        var slot = self.head
        while slot >= 0 {
            keys.append(self.slots[slot].key)
            slot = self.slots[slot].older
        }
        return keys
    }

    /// Runs `body` on `key`'s value, which becomes the most recently used; nil (and `body` not run) without one.
    mutating func withValue<T>(_ key: Key, _ body: (inout Value) -> T) -> T? {
        guard let slot = self.index[key] else { return nil }
        self.unlink(slot)
        self.pushFront(slot)
        return body(&self.slots[slot].value!)
    }

    /// `key`'s value without making it recently used, or nil.
    func peek(_ key: Key) -> Value? {
        self.index[key].flatMap { self.slots[$0].value }
    }

    /// Runs `body` on `key`'s value in place, without making it recently used; nil (and `body` not run) without one.
    func withPeek<T>(_ key: Key, _ body: (borrowing Value) -> T) -> T? {
        guard let slot = self.index[key], self.slots[slot].value != nil else { return nil }
        return body(self.slots[slot].value!)
    }

    /// `key`'s value, which becomes the most recently used, or nil.
    mutating func value(_ key: Key) -> Value? {
        self.withValue(key) { $0 }
    }

    /// Sets `key`'s value, which becomes the most recently used; the value it replaces, if any.
    @discardableResult
    mutating func set(_ key: Key, _ value: Value) -> Value? {
        if let slot = self.index[key] {
            let old = self.slots[slot].value
            self.slots[slot].value = value
            self.unlink(slot)
            self.pushFront(slot)
            return old
        }
        let slot: Int
        if let reused = self.free.popLast() {
            slot = reused
            self.slots[slot] = Slot(key: key, value: value, newer: -1, older: -1)
        } else {
            slot = self.slots.count
            self.slots.append(Slot(key: key, value: value, newer: -1, older: -1))
        }
        self.index[key] = slot
        self.pushFront(slot)
        return nil
    }

    /// Removes `key`'s entry; its value, or nil without one.
    @discardableResult
    mutating func remove(_ key: Key) -> Value? {
        guard let slot = self.index.removeValue(forKey: key) else { return nil }
        return self.release(slot)
    }

    /// Removes the least recently used entry and returns it, or nil when there is none.
    mutating func removeLeastRecent() -> (key: Key, value: Value)? {
        guard self.tail >= 0 else { return nil }
        let slot = self.tail
        let key = self.slots[slot].key
        self.index[key] = nil
        return self.release(slot).map { (key, $0) }
    }

    /// Removes every entry.
    mutating func removeAll() {
        self = RecencyList()
    }

    private mutating func release(_ slot: Int) -> Value? {
        self.unlink(slot)
        let value = self.slots[slot].value
        self.slots[slot].value = nil
        self.free.append(slot)
        return value
    }

    /// Takes `slot` out of the recency list (it stays in `slots`).
    private mutating func unlink(_ slot: Int) {
        let newer = self.slots[slot].newer
        let older = self.slots[slot].older
        if newer >= 0 { self.slots[newer].older = older } else if self.head == slot { self.head = older }
        if older >= 0 { self.slots[older].newer = newer } else if self.tail == slot { self.tail = newer }
        self.slots[slot].newer = -1
        self.slots[slot].older = -1
    }

    /// Makes `slot` the most recently used.
    private mutating func pushFront(_ slot: Int) {
        self.slots[slot].older = self.head
        self.slots[slot].newer = -1
        if self.head >= 0 { self.slots[self.head].newer = slot }
        self.head = slot
        if self.tail < 0 { self.tail = slot }
    }
}

extension RecencyList: Sendable where Key: Sendable, Value: Sendable {}

extension RecencyList.Slot: Sendable where Key: Sendable, Value: Sendable {}
