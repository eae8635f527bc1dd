/// Finds the route for a host, path and method: hosts through hash tables, paths through a segment trie.
///
/// With a thousand routes a linear scan would cost microseconds per request; here the cost depends on the number
/// of path segments and host labels, not on the number of routes.
struct RouteIndex: Sendable {
    /// One trie node: the routes ending here and the edges to the next segment.
    ///
    /// Children are indices into `nodes`, so the whole trie is a few flat arrays.
    struct Node: Sendable {
        var literals = ByteKeyedTable<Int>(foldsCase: false)
        var parameter = -1
        /// Routes whose pattern ends exactly here, in configuration order.
        var exact: [Int] = []
        /// Routes whose pattern ends in `**` (or is a prefix) here, in configuration order.
        var rest: [Int] = []
    }

    private var nodes: [Node] = []
    private var exactHosts = ByteKeyedTable<Int>(foldsCase: true)
    private var wildcardHosts = ByteKeyedTable<Int>(foldsCase: true)
    private var anyHostRoot = -1

    /// Builds the index over `routes`, which must have passed validation.
    ///
    /// Routes with an unparsable host or path are left out rather than trapping.
    init(routes: [Route]) {
        for (index, route) in routes.enumerated() {
            guard let path = PathPattern(route.path) else {
                continue
            }
            var node: Int
            switch route.host.flatMap(HostPattern.init) {
            case .exact(let host):
                node = Self.child(of: &self.exactHosts, key: host, nodes: &self.nodes)
            case .wildcard(let suffix):
                node = Self.child(of: &self.wildcardHosts, key: suffix, nodes: &self.nodes)
            case nil:
                if self.anyHostRoot < 0 {
                    self.nodes.append(Node())
                    self.anyHostRoot = self.nodes.count - 1
                }
                node = self.anyHostRoot
            }
            var endsInRest = false
            for segment in path.segments {
                switch segment {
                case .literal(let bytes):
                    var literals = self.nodes[node].literals
                    self.nodes[node].literals = ByteKeyedTable(foldsCase: false)
                    let child = Self.child(of: &literals, key: bytes, nodes: &self.nodes)
                    self.nodes[node].literals = literals
                    node = child
                case .parameter:
                    if self.nodes[node].parameter < 0 {
                        self.nodes.append(Node())
                        self.nodes[node].parameter = self.nodes.count - 1
                    }
                    node = self.nodes[node].parameter
                case .rest:
                    self.nodes[node].rest.append(index)
                    endsInRest = true
                }
            }
            if !endsInRest {
                self.nodes[node].exact.append(index)
            }
        }
        for node in self.nodes.indices {
            self.nodes[node].exact = Self.methodSpecificFirst(self.nodes[node].exact, routes)
            self.nodes[node].rest = Self.methodSpecificFirst(self.nodes[node].rest, routes)
        }
    }

    /// Routes that list methods first, then the others, each group in configuration order.
    ///
    /// `POST /orders` must win over a plain `/orders` wherever the two are written.
    private static func methodSpecificFirst(_ candidates: [Int], _ routes: [Route]) -> [Int] {
        candidates.filter { !routes[$0].methods.isEmpty } + candidates.filter { routes[$0].methods.isEmpty }
    }

    private static func child(of table: inout ByteKeyedTable<Int>, key: [UInt8], nodes: inout [Node]) -> Int {
        table.value(for: key) {
            nodes.append(Node())
            return nodes.count - 1
        }
    }

    /// The index of the most specific route for the request, or nil.
    ///
    /// Exact hosts are tried first, then wildcard hosts from the longest suffix, then routes without a host; within
    /// a host, see `Route.path` for the order.
    func find<R: RoutableRequest>(_ request: R, routes: [CompiledRoute]) -> Int? {
        var path = request.path
        let method = request.method
        return path.withUTF8 { path in
            if var host = request.host, !self.exactHosts.isEmpty || !self.wildcardHosts.isEmpty {
                let found: Int? = host.withUTF8 { host in
                    let host = Bytes.slice(host, Self.hostRange(host))
                    if let root = self.exactHosts.value(for: host),
                        let found = self.match(root, path, 0, method, routes)
                    {
                        return found
                    }
                    guard !self.wildcardHosts.isEmpty else {
                        return nil
                    }
                    for dot in 0..<host.count where host[dot] == UInt8(ascii: ".") && dot + 1 < host.count {
                        if let root = self.wildcardHosts.value(for: Bytes.slice(host, dot + 1..<host.count)),
                            let found = self.match(root, path, 0, method, routes)
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
            return self.match(self.anyHostRoot, path, 0, method, routes)
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

    private func match(
        _ node: Int,
        _ path: UnsafeBufferPointer<UInt8>,
        _ start: Int,
        _ method: String,
        _ routes: [CompiledRoute]
    ) -> Int? {
        var index = start
        while index < path.count, path[index] == UInt8(ascii: "/") {
            index += 1
        }
        if index == path.count {
            return Self.first(self.nodes[node].exact, method, routes)
                ?? Self.first(self.nodes[node].rest, method, routes)
        }
        var end = index
        while end < path.count, path[end] != UInt8(ascii: "/") {
            end += 1
        }
        if !self.nodes[node].literals.isEmpty,
            let child = self.nodes[node].literals.value(for: Bytes.slice(path, index..<end)),
            let found = self.match(child, path, end, method, routes)
        {
            return found
        }
        let parameter = self.nodes[node].parameter
        if parameter >= 0, let found = self.match(parameter, path, end, method, routes) {
            return found
        }
        return Self.first(self.nodes[node].rest, method, routes)
    }

    @inline(__always)
    private static func first(_ candidates: [Int], _ method: String, _ routes: [CompiledRoute]) -> Int? {
        for candidate in candidates where routes[candidate].accepts(method: method) {
            return candidate
        }
        return nil
    }
}
