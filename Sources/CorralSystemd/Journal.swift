internal import CSystemd

#if canImport(Glibc)
    internal import Glibc
#endif

extension Systemd {
    /// Writes one entry to the journal with `sd_journal_sendv`: each field is
    /// "NAME=value" (NAME: A–Z, 0–9 and `_`, not starting with `_`; a value
    /// may hold newlines). Returns nil when the journal took it, else the errno.
    public static func journalSend(_ fields: [String]) -> Int32? {
        guard !fields.isEmpty else { return EINVAL }
        var bytes: [UInt8] = []
        var spans: [(start: Int, count: Int)] = []
        spans.reserveCapacity(fields.count)
        for field in fields {
            let start = bytes.count
            bytes.append(contentsOf: field.utf8)
            spans.append((start, bytes.count - start))
        }
        let result = bytes.withUnsafeMutableBytes { raw -> Int32 in
            guard let base = raw.baseAddress else { return -EINVAL }
            var vectors = spans.map { iovec(iov_base: base + $0.start, iov_len: $0.count) }
            return sd_journal_sendv(&vectors, Int32(vectors.count))
        }
        return result < 0 ? -result : nil
    }

    /// Whether this process's stderr is a stream systemd connected to the
    /// journal: `$JOURNAL_STREAM` holds that stream's "DEVICE:INODE"
    /// (systemd.exec(5)), compared with fstat(2) so that a child whose stderr
    /// was redirected does not mistake an inherited variable for its own.
    public static var standardErrorIsJournal: Bool {
        guard let value = getenv("JOURNAL_STREAM") else { return false }
        let parts = String(cString: value).split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var info = stat()
        guard fstat(2, &info) == 0 else { return false }
        return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode
    }
}
