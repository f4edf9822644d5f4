public import CorralCore

#if canImport(Glibc)
    import Glibc
#endif

extension Timestamp {
    /// The wall clock now (CLOCK_REALTIME, to the millisecond): what the API's
    /// times are, and what the engine's clock is outside tests.
    public static func now() -> Timestamp {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Timestamp(milliseconds: Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000)
    }
}
