import CorralLinux

#if canImport(Glibc)
    import Glibc
#endif

/// `--metrics-address HOST:PORT`: where the read-only metrics listener binds.
/// HOST is an IPv4 address, a bracketed IPv6 address or a name; PORT 1–65535.
public struct MetricsAddress: Equatable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses the flag's value; the error names the value and the fix.
    public init(parsing text: String) throws(DaemonError) {
        let example = "give HOST:PORT, e.g. 127.0.0.1:9464 (loopback) or [::1]:9464"
        guard let colon = text.lastIndex(of: ":") else {
            throw DaemonError("--metrics-address '\(text)' has no port: \(example)")
        }
        var host = String(text[..<colon])
        let portText = text[text.index(after: colon)...]
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = String(host.dropFirst().dropLast())
        } else if host.contains(":") {
            throw DaemonError("--metrics-address '\(text)': an IPv6 address goes in brackets: [\(host)]:\(portText)")
        }
        guard !host.isEmpty else {
            throw DaemonError("--metrics-address '\(text)' has no host: \(example); 0.0.0.0 listens on every interface")
        }
        guard let port = Int(portText), (1...65535).contains(port) else {
            throw DaemonError("--metrics-address '\(text)': the port must be a number from 1 to 65535, not '\(portText)'")
        }
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Resolves the host and binds a socket there for a moment, so that a
    /// taken port or an address not on this host is said at start-up with
    /// the fix, before the daemon takes over anything.
    public func checkBindable() throws(DaemonError) {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &result)
        guard status == 0, let first = result else {
            let reason = String(cString: gai_strerror(status))
            throw DaemonError(
                "--metrics-address \(self): cannot resolve '\(host)' (\(reason)): give an address of this host, e.g. 127.0.0.1")
        }
        defer { freeaddrinfo(result) }
        let fd: Int32
        switch valueOrErrno(socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)) {
        case .success(let made): fd = made
        case .failure(let error):
            throw DaemonError("--metrics-address \(self): cannot make a socket: \(String(cString: strerror(error.rawValue)))")
        }
        defer { close(fd) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        if case .failure(let error) = nothingOrErrno(bind(fd, first.pointee.ai_addr, first.pointee.ai_addrlen)) {
            let code = error.rawValue
            let reason = String(cString: strerror(code))
            let fix =
                code == EADDRINUSE
                ? "another process listens there (ss -ltnp 'sport = :\(port)'): pick another port"
                : code == EADDRNOTAVAIL
                    ? "the address is not one of this host's: use 127.0.0.1 or an address ip -br addr lists"
                    : code == EACCES
                        ? "ports below 1024 need CAP_NET_BIND_SERVICE: pick a port above 1023, e.g. 9464" : "pick another address"
            throw DaemonError("--metrics-address \(self): cannot listen there (\(reason)): \(fix)")
        }
    }
}
