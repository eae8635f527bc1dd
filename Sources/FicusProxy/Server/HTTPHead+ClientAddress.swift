import FicusCore

extension HTTPHead {
    /// The client of this request when it came from `peer`: the peer itself, or behind trusted proxies the right-most
    /// untrusted address of `X-Forwarded-For` (see `ClientAddress.resolve`).
    func clientAddress(peer: IPAddress, trusted: [CIDR]) -> IPAddress {
        self.bytes.withUnsafeReadableBytes { raw in
            var values: [UnsafeRawBufferPointer] = []
            for index in self.fields.indices {
                let field = self.fields[index]
                guard field.nameEnd - field.nameStart == 15, self.fieldNameIs(index, "x-forwarded-for") else { continue }
                values.append(UnsafeRawBufferPointer(rebasing: raw[Int(field.valueStart)..<Int(field.valueEnd)]))
            }
            return ClientAddress.resolve(peer: peer, forwardedFor: values, trusted: trusted)
        }
    }
}
