#if canImport(Glibc)
    internal import Glibc
#endif

/// Finds shared objects mapped into this process.
public enum LoadedLibraries {
    /// The file name (symlinks resolved) of the first shared object mapped
    /// into this process whose name starts with `prefix`, read from
    /// /proc/self/maps; nil when none is.
    public static func find(prefix: String) -> String? {
        guard let file = fopen("/proc/self/maps", "r") else { return nil }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 4096)
        while fgets(&buffer, Int32(buffer.count), file) != nil {
            let line = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard let slash = line.lastIndex(of: "/") else { continue }
            let name = line[line.index(after: slash)...].trimmingCharacters(in: "\n")
            if name.hasPrefix(prefix) {
                var resolved = [CChar](repeating: 0, count: Int(PATH_MAX))
                let path = String(line[line.firstIndex(of: "/")!...]).trimmingCharacters(in: "\n")
                if realpath(path, &resolved) != nil {
                    let full = String(decoding: resolved.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                    return String(full.split(separator: "/").last ?? Substring(name))
                }
                return name
            }
        }
        return nil
    }
}

extension StringProtocol {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        var text = String(self)
        while text.last == set { text.removeLast() }
        return text
    }
}
