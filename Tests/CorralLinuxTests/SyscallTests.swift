import CorralLinux
import Foundation
import SystemPackage
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("syscall layer")
struct SyscallTests {
    @Test func aFailedCallCarriesItsErrno() {
        #expect(valueOrErrno(close(-1)) == .failure(.badFileDescriptor))
        #expect(valueOrErrno(Int32(7)) == .success(7))
        #expect(throws: Errno.noSuchFileOrDirectory) { try pointerOrErrno(fopen("/nonexistent/corral", "r")).get() }
    }

    @Test func anInterruptedCallIsMadeAgainAndOnlyThat() {
        var calls = 0
        let interruptedTwice = retryOnInterrupt { () -> Int32 in
            calls += 1
            if calls < 3 {
                errno = EINTR
                return -1
            }
            return 42
        }
        #expect(interruptedTwice == .success(42))
        #expect(calls == 3)

        calls = 0
        let refused = retryOnInterrupt { () -> Int32 in
            calls += 1
            errno = EAGAIN
            return -1
        }
        #expect(refused == .failure(.resourceTemporarilyUnavailable))
        #expect(calls == 1)
    }

    @Test func aWholeFileAcrossSeveralReads() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("corral-read-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let text = String(repeating: "usage_usec 123456789\n", count: 2000)  // ~42 KB: six 8 KiB chunks
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        #expect(try readWholeFile(atPath: path) == text)
        #expect(throws: Errno.fileTooLarge) { try readWholeFile(atPath: path, maximumBytes: 4096) }
        #expect(throws: Errno.noSuchFileOrDirectory) { try readWholeFile(atPath: path + ".missing") }

        // pread from 0 reads the same again on a held descriptor.
        let held = try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec])
        defer { try? held.close() }
        #expect(try held.readToEnd(fromAbsoluteOffset: 0) == text)
        #expect(try held.readToEnd(fromAbsoluteOffset: 0) == text)
        #expect(try held.readToEnd(fromAbsoluteOffset: Int64(text.utf8.count - 3)) == "89\n")
    }
}
