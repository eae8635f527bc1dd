/// Finds the route for a host, path and method: hosts through hash tables, paths through a segment trie.
///
/// With a thousand routes a linear scan would cost microseconds per request; here the cost depends on the number
/// of path segments and host labels, not on the number of routes.
struct RouteIndex: Sendable {
    /// One trie node: the routes ending here and the edge to a parameter segment.
    ///
    /// Literal edges live in `literals` under the node's index and candidates in `candidates`, so the whole trie is
    /// a few flat arrays of plain values and a lookup retains nothing.
    struct Node: Sendable {
        var parameter = -1
        var hasLiterals = false
        /// Routes whose pattern ends exactly here, in `candidates`, method-specific routes first.
        var exact = 0..<0
        /// Routes whose pattern ends in `**` (or is a prefix) here, in `candidates`, method-specific routes first.
        var rest = 0..<0
    }

    private var nodes: [Node] = []
    private var candidates: [Int] = []
    /// Every literal edge, keyed by the parent node.
    private var literals = ByteKeyedTable<Int>(foldsCase: false)
    private var exactHosts = ByteKeyedTable<Int>(foldsCase: true)
    private var wildcardHosts = ByteKeyedTable<Int>(foldsCase: true)
    private var anyHostRoot = -1
    /// Per route: the range of its upper-cased methods in `methodTexts`; empty for every method.
    private var methods: [Range<Int>] = []
    private var methodTexts: [Range<Int>] = []
    private var methodBytes: [UInt8] = []

    /// Builds the index over `routes`, which must have passed validation.
    ///
    /// Routes with an unparsable host or path are left out rather than trapping.
    init(routes: [Route]) {
        var nodes: [Node] = []
        var exact: [[Int]] = []
        var rest: [[Int]] = []
        func newNode() -> Int {
            nodes.append(Node())
            exact.append([])
            rest.append([])
            return nodes.count - 1
        }
        for route in routes {
            let start = self.methodTexts.count
            for method in route.methods {
                let bytes = self.methodBytes.count
                self.methodBytes += method.uppercased().utf8
                self.methodTexts.append(bytes..<self.methodBytes.count)
            }
            self.methods.append(start..<self.methodTexts.count)
        }
        var literals = ByteKeyedTable<Int>(foldsCase: false)
        var exactHosts = ByteKeyedTable<Int>(foldsCase: true)
        var wildcardHosts = ByteKeyedTable<Int>(foldsCase: true)
        var anyHostRoot = -1
        for (index, route) in routes.enumerated() {
            guard let path = PathPattern(route.path) else {
                continue
            }
            var node: Int
            switch route.host.flatMap(HostPattern.init) {
            case .exact(let host):
                node = exactHosts.value(for: host, orInsert: newNode)
            case .wildcard(let suffix):
                node = wildcardHosts.value(for: suffix, orInsert: newNode)
            case nil:
                if anyHostRoot < 0 {
                    anyHostRoot = newNode()
                }
                node = anyHostRoot
            }
            var endsInRest = false
            for segment in path.segments {
                switch segment {
                case .literal(let bytes):
                    nodes[node].hasLiterals = true
                    node = literals.value(for: bytes, owner: node, orInsert: newNode)
                case .parameter:
                    if nodes[node].parameter < 0 {
                        let child = newNode()
                        nodes[node].parameter = child
                    }
                    node = nodes[node].parameter
                case .rest:
                    rest[node].append(index)
                    endsInRest = true
                }
            }
            if !endsInRest {
                exact[node].append(index)
            }
        }
        for node in nodes.indices {
            nodes[node].exact = self.appendCandidates(exact[node], routes)
            nodes[node].rest = self.appendCandidates(rest[node], routes)
        }
        self.nodes = nodes
        self.literals = literals
        self.exactHosts = exactHosts
        self.wildcardHosts = wildcardHosts
        self.anyHostRoot = anyHostRoot
    }

    /// Appends routes that list methods first, then the others, each group in configuration order.
    ///
    /// `POST /orders` must win over a plain `/orders` wherever the two are written.
    private mutating func appendCandidates(_ candidates: [Int], _ routes: [Route]) -> Range<Int> {
        let start = self.candidates.count
        self.candidates += candidates.filter { !routes[$0].methods.isEmpty }
        self.candidates += candidates.filter { routes[$0].methods.isEmpty }
        return start..<self.candidates.count
    }

    /// The index of the most specific route for the request, or nil.
    ///
    /// Exact hosts are tried first, then wildcard hosts from the longest suffix, then routes without a host; within
    /// a host, see `Route.path` for the order.
    func find<R: RoutableRequest>(_ request: R) -> Int? {
        var path = request.path
        return path.withUTF8 { path in
            if !self.exactHosts.isEmpty || !self.wildcardHosts.isEmpty, var host = request.host {
                let found: Int? = host.withUTF8 { host in
                    let host = Bytes.slice(host, Self.hostRange(host))
                    if let root = self.exactHosts.value(for: host), let found = self.match(root, path, 0, request) {
                        return found
                    }
                    guard !self.wildcardHosts.isEmpty else {
                        return nil
                    }
                    for dot in 0..<host.count where host[dot] == UInt8(ascii: ".") && dot + 1 < host.count {
                        if let root = self.wildcardHosts.value(for: Bytes.slice(host, dot + 1..<host.count)),
                            let found = self.match(root, path, 0, request)
                        {
                            return found
                        }
                    }
                    return nil
                }
                if let found {
                    return found
                }
            }
            guard self.anyHostRoot >= 0 else {
                return nil
            }
            return self.match(self.anyHostRoot, path, 0, request)
        }
    }

    /// The host without a `:port` left on and without a trailing dot.
    ///
    /// A bracketed IPv6 literal keeps its brackets; an unbracketed one (several colons) is left whole.
    private static func hostRange(_ host: UnsafeBufferPointer<UInt8>) -> Range<Int> {
        var end = host.count
        if host.first == UInt8(ascii: "[") {
            if let close = host.firstIndex(of: UInt8(ascii: "]")) {
                end = close + 1
            }
        } else if let colon = host.firstIndex(of: UInt8(ascii: ":")),
            host.lastIndex(of: UInt8(ascii: ":")) == colon
        {
            end = colon
        }
        if end > 0, host[end - 1] == UInt8(ascii: ".") {
            end -= 1
        }
        return 0..<end
    }

    private func match<R: RoutableRequest>(
        _ node: Int,
        _ path: UnsafeBufferPointer<UInt8>,
        _ start: Int,
        _ request: R
    ) -> Int? {
        var index = start
        while index < path.count, path[index] == UInt8(ascii: "/") {
            index += 1
        }
        let current = self.nodes[node]
        if index == path.count {
            return self.first(current.exact, request) ?? self.first(current.rest, request)
        }
        var end = index
        while end < path.count, path[end] != UInt8(ascii: "/") {
            end += 1
        }
        if current.hasLiterals,
            let child = self.literals.value(for: Bytes.slice(path, index..<end), owner: node),
            let found = self.match(child, path, end, request)
        {
            return found
        }
        if current.parameter >= 0, let found = self.match(current.parameter, path, end, request) {
            return found
        }
        return self.first(current.rest, request)
    }

    /// The first of `candidates` that accepts the request's method.
    ///
    /// The method is asked for only when a candidate lists methods.
    @inline(__always)
    private func first<R: RoutableRequest>(_ candidates: Range<Int>, _ request: R) -> Int? {
        for position in candidates {
            let candidate = self.candidates[position]
            let methods = self.methods[candidate]
            if methods.isEmpty {
                return candidate
            }
            let accepted = self.methodBytes.withUnsafeBufferPointer { bytes in
                MethodList.contains(request.method, self.methodTexts[methods].lazy.map { Bytes.slice(bytes, $0) })
            }
            if accepted {
                return candidate
            }
        }
        return nil
    }
}
