internal import CSystemd

#if canImport(Glibc)
    internal import Glibc
#endif

/// A D-Bus call to systemd failed; `description` says which call and why.
public struct SystemdBusError: Error, CustomStringConvertible, Sendable {
    /// The D-Bus error name ("org.freedesktop.systemd1.NoSuchUnit"), when systemd sent one.
    public var name: String?
    public var description: String
}

/// The system manager (PID 1) over D-Bus, through libsystemd's sd-bus: the
/// calls `systemd-run --scope` and `systemctl` make, for the agents' scope.
///
/// As root it talks to systemd's private socket (/run/systemd/private, what
/// systemctl uses), so no D-Bus daemon is needed; otherwise the system bus.
/// Not thread-safe: one owner, used from one task at a time.
public final class SystemdBus {
    private let bus: OpaquePointer

    public init() throws(SystemdBusError) {
        var handle: OpaquePointer?
        if geteuid() == 0, access("/run/systemd/private", F_OK) == 0, sd_bus_new(&handle) >= 0, let created = handle {
            if sd_bus_set_address(created, "unix:path=/run/systemd/private") >= 0, sd_bus_start(created) >= 0 {
                bus = created
                return
            }
            sd_bus_flush_close_unref(created)
            handle = nil
        }
        let result = sd_bus_open_system(&handle)
        guard result >= 0, let opened = handle else {
            throw SystemdBusError(description: "cannot connect to systemd (D-Bus system bus): \(Self.text(errno: -result))")
        }
        bus = opened
    }

    deinit { sd_bus_flush_close_unref(bus) }

    /// The unit's ActiveState ("active", "failed", …), nil when systemd has no such unit loaded.
    public func activeState(ofUnit name: String) throws(SystemdBusError) -> String? {
        guard let path = try unitPath(name) else { return nil }
        return try stringProperty(path: path, interface: "org.freedesktop.systemd1.Unit", member: "ActiveState")
    }

    /// The cgroup of a scope, service or slice ("/system.slice/x.scope"), nil when not loaded.
    public func controlGroup(ofUnit name: String) throws(SystemdBusError) -> String? {
        guard let path = try unitPath(name) else { return nil }
        let interface: String
        switch name.split(separator: ".").last {
        case "service": interface = "org.freedesktop.systemd1.Service"
        case "slice": interface = "org.freedesktop.systemd1.Slice"
        default: interface = "org.freedesktop.systemd1.Scope"
        }
        return try stringProperty(path: path, interface: interface, member: "ControlGroup")
    }

    /// A property of a transient unit.
    public enum Property: Sendable, Equatable {
        case string(String, String)
        case bool(String, Bool)
        case uint64(String, UInt64)
        case pids([UInt32])
    }

    /// StartTransientUnit(name, "fail", properties): what `systemd-run --scope` does.
    /// The job is queued when this returns; a scope's processes move when it runs.
    public func startTransientUnit(_ name: String, properties: [Property]) throws(SystemdBusError) {
        let message = try newCall("StartTransientUnit")
        defer { sd_bus_message_unref(message) }
        try check(appendString(message, name), "StartTransientUnit")
        try check(appendString(message, "fail"), "StartTransientUnit")
        try check(sd_bus_message_open_container(message, CChar(UInt8(ascii: "a")), "(sv)"), "StartTransientUnit")
        for property in properties { try append(property, to: message) }
        try check(sd_bus_message_close_container(message), "StartTransientUnit")
        // No auxiliary units.
        try check(sd_bus_message_open_container(message, CChar(UInt8(ascii: "a")), "(sa(sv))"), "StartTransientUnit")
        try check(sd_bus_message_close_container(message), "StartTransientUnit")
        _ = try call(message, "StartTransientUnit(\(name))")
    }

    /// ResetFailedUnit(name); a unit that is not failed (or not loaded) is not an error.
    public func resetFailed(_ name: String) {
        guard let message = try? newCall("ResetFailedUnit") else { return }
        defer { sd_bus_message_unref(message) }
        guard appendString(message, name) >= 0 else { return }
        if let reply = try? call(message, "ResetFailedUnit") { sd_bus_message_unref(reply) }
    }

    // MARK: Plumbing

    private func unitPath(_ name: String) throws(SystemdBusError) -> String? {
        let message = try newCall("GetUnit")
        defer { sd_bus_message_unref(message) }
        try check(appendString(message, name), "GetUnit")
        let reply: OpaquePointer
        do {
            reply = try call(message, "GetUnit(\(name))")
        } catch  where error.name == "org.freedesktop.systemd1.NoSuchUnit" {
            return nil
        }
        defer { sd_bus_message_unref(reply) }
        var path: UnsafePointer<CChar>?
        try check(sd_bus_message_read_basic(reply, CChar(UInt8(ascii: "o")), &path), "GetUnit(\(name)) reply")
        return path.map { String(cString: $0) }
    }

    private func stringProperty(path: String, interface: String, member: String) throws(SystemdBusError) -> String {
        var error = sd_bus_error()
        defer { sd_bus_error_free(&error) }
        var value: UnsafeMutablePointer<CChar>?
        let result = sd_bus_get_property_string(bus, "org.freedesktop.systemd1", path, interface, member, &error, &value)
        guard result >= 0, let value else { throw Self.failure(error, result, "reading \(member) of \(path)") }
        defer { free(value) }
        return String(cString: value)
    }

    private func newCall(_ member: String) throws(SystemdBusError) -> OpaquePointer {
        var message: OpaquePointer?
        let result = sd_bus_message_new_method_call(
            bus, &message, "org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager", member)
        guard result >= 0, let message else {
            throw SystemdBusError(description: "cannot build the D-Bus call \(member): \(Self.text(errno: -result))")
        }
        return message
    }

    private func call(_ message: OpaquePointer, _ what: String) throws(SystemdBusError) -> OpaquePointer {
        var error = sd_bus_error()
        defer { sd_bus_error_free(&error) }
        var reply: OpaquePointer?
        let result = sd_bus_call(bus, message, 0, &error, &reply)
        guard result >= 0, let reply else { throw Self.failure(error, result, what) }
        return reply
    }

    private func append(_ property: Property, to message: OpaquePointer) throws(SystemdBusError) {
        let what = "StartTransientUnit property"
        try check(sd_bus_message_open_container(message, CChar(UInt8(ascii: "r")), "sv"), what)
        switch property {
        case .string(let name, let value):
            try check(appendString(message, name), what)
            try check(sd_bus_message_open_container(message, CChar(UInt8(ascii: "v")), "s"), what)
            try check(appendString(message, value), what)
        case .bool(let name, let value):
            try check(appendString(message, name), what)
            try check(sd_bus_message_open_container(message, CChar(UInt8(ascii: "v")), "b"), what)
            var flag: Int32 = value ? 1 : 0
            try check(sd_bus_message_append_basic(message, CChar(UInt8(ascii: "b")), &flag), what)
        case .uint64(let name, let value):
            try check(appendString(message, name), what)
            try check(sd_bus_message_open_container(message, CChar(UInt8(ascii: "v")), "t"), what)
            var number = value
            try check(sd_bus_message_append_basic(message, CChar(UInt8(ascii: "t")), &number), what)
        case .pids(let pids):
            try check(appendString(message, "PIDs"), what)
            try check(sd_bus_message_open_container(message, CChar(UInt8(ascii: "v")), "au"), what)
            try check(sd_bus_message_open_container(message, CChar(UInt8(ascii: "a")), "u"), what)
            for pid in pids {
                var value = pid
                try check(sd_bus_message_append_basic(message, CChar(UInt8(ascii: "u")), &value), what)
            }
            try check(sd_bus_message_close_container(message), what)
        }
        try check(sd_bus_message_close_container(message), what)  // v
        try check(sd_bus_message_close_container(message), what)  // r
    }

    private func appendString(_ message: OpaquePointer, _ value: String) -> Int32 {
        value.withCString { sd_bus_message_append_basic(message, CChar(UInt8(ascii: "s")), $0) }
    }

    private func check(_ result: Int32, _ what: String) throws(SystemdBusError) {
        guard result >= 0 else { throw SystemdBusError(description: "\(what): \(Self.text(errno: -result))") }
    }

    private static func failure(_ error: sd_bus_error, _ result: Int32, _ what: String) -> SystemdBusError {
        let name = error.name.map { String(cString: $0) }
        let message = error.message.map { String(cString: $0) } ?? text(errno: -result)
        return SystemdBusError(name: name, description: "\(what): \(message)\(name.map { " (\($0))" } ?? "")")
    }

    static func text(errno value: Int32) -> String {
        String(cString: strerror(value))
    }
}
