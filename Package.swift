// swift-tools-version:6.1
import PackageDescription

/// Corral: run agents under cgroup v2 quotas.
///
/// Layering (see README "Layout"): `CorralCore` is pure (no I/O, no C);
/// `CorralCgroup` is the only code that touches cgroupfs; `CCorralLinux` holds
/// the syscalls Swift cannot express and the fork-to-exec child, and
/// `CorralLinux` wraps them and libc's calls for Swift (`Errno`, EINTR); each
/// system C library has exactly one Swift importer (`CorralSystemd`, `CorralSeccomp`).
let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "corral",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "corral", targets: ["corral"]),
        .library(name: "CorralCore", targets: ["CorralCore"]),
        .library(name: "CorralClient", targets: ["CorralClient"]),
        .executable(name: "corral-example-agent", targets: ["corral-example-agent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // The metrics' registry and text exposition (swift-atomics and swift-metrics' core only: no NIO of its own).
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // Pure domain model: quotas, limits, violations, cgroup file formats.
        .target(name: "CorralCore", swiftSettings: strict),

        // The API's wire types (requests, responses, events, errors) and its
        // JSON coding, shared by the server, the CLI and CorralClient.
        .target(name: "CorralAPI", dependencies: ["CorralCore"], swiftSettings: strict),

        // libyaml, the YAML parser of the configuration. Not Yams: it imports the whole of
        // Foundation (with ICU, half of the CLI's binary and 15% of the protocol conformances
        // the Swift runtime scans on every `corral` start); its composer is under 300 lines over
        // libyaml's events (CorralConfig/YAML.swift).
        .systemLibrary(
            name: "CYAML",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"])]
        ),
        // YAML configuration (nodes carry line:column for errors).
        .target(
            name: "CorralConfig",
            dependencies: ["CYAML", "CorralCore", "CorralSeccomp"],
            swiftSettings: strict
        ),

        // Syscalls without a Swift surface (clone3, openat2, pidfd) and the
        // async-signal-safe child between fork and exec.
        .target(name: "CCorralLinux"),
        // corrald as a container's PID 1: forks before main so that an init reaps orphans
        // (init.c); linked into corrald only.
        .target(name: "CCorraldInit"),

        // The Swift side of CCorralLinux and libc's system calls: each wrapped
        // once, -1 and errno turned into `Errno`, EINTR retried in one place,
        // one whole-file reader.
        .target(
            name: "CorralLinux",
            dependencies: ["CCorralLinux", .product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: strict
        ),

        // Corral's helper threads (no Foundation): named pthreads, a worker
        // thread with a queue (optionally periodic), a latch.
        .target(name: "CorralThreads", dependencies: ["CorralLinux"], swiftSettings: strict),

        .systemLibrary(
            name: "CSystemd",
            pkgConfig: "libsystemd",
            providers: [.apt(["libsystemd-dev"])]
        ),
        .systemLibrary(
            name: "CSeccomp",
            pkgConfig: "libseccomp",
            providers: [.apt(["libseccomp-dev"])]
        ),
        .target(name: "CorralSystemd", dependencies: ["CSystemd", "CorralLinux"], swiftSettings: strict),
        .target(name: "CorralSeccomp", dependencies: ["CSeccomp", "CorralCore", "CorralLinux"], swiftSettings: strict),

        // The daemon's swift-log handler for the systemd journal (native fields
        // through CorralSystemd's sd_journal_sendv).
        .target(
            name: "CorralJournal",
            dependencies: ["CorralSystemd", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),

        // cgroupfs access rooted at a directory fd, host probing, the tree.
        .target(
            name: "CorralCgroup",
            dependencies: [
                "CorralCore", "CorralLinux",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict
        ),

        // Spawning into a cgroup and supervising one agent run.
        .target(
            name: "CorralRuntime",
            dependencies: [
                "CorralCore", "CorralCgroup", "CorralLinux", "CorralSeccomp", "CorralThreads", "CCorralLinux",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict
        ),

        // Event-driven watching of agent cgroups: inotify on *.events files, PSI
        // triggers, periodic sampling; runs its blocking loop on its own thread.
        .target(
            name: "CorralWatcher",
            dependencies: [
                "CorralCore", "CorralCgroup", "CorralLinux", "CorralThreads",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict
        ),

        // Durable state in SQLite (WAL) through GRDB: agents, enforcement history, ladders.
        .target(
            name: "CorralStore",
            dependencies: ["CorralCore", "CorralLinux", "CorralThreads", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strict
        ),

        // The engine: observations → violations → the escalation ladder → actions
        // on the cgroup tree, every outcome recorded; shared by daemon and `corral run`.
        .target(
            name: "CorralEngine",
            dependencies: [
                "CorralAPI", "CorralCore", "CorralCgroup", "CorralRuntime", "CorralSeccomp", "CorralThreads", "CorralWatcher",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict
        ),

        // The daemon: engine + SQLite store + HTTP/JSON API on a Unix socket,
        // run as services with graceful shutdown and reload.
        .target(
            name: "CorralServer",
            dependencies: [
                "CorralAPI", "CorralCore", "CorralConfig", "CorralCgroup", "CorralEngine", "CorralStore", "CorralWatcher",
                "CorralRuntime", "CorralSystemd", "CorralJournal", "CorralLinux", "CCorralLinux",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "corrald",
            dependencies: [
                "CorralServer", "CorralCore", "CorralConfig", "CorralCgroup", "CorralJournal", "CorralSystemd", "CCorraldInit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),

        // A client of the daemon's API over its Unix socket (for the CLI and for agents).
        .target(
            name: "CorralClient", dependencies: ["CorralAPI", "CorralCore", "CorralLinux", "CorralThreads"], swiftSettings: strict),

        .executableTarget(
            name: "corral",
            dependencies: [
                "CorralAPI", "CorralCore", "CorralConfig", "CorralCgroup", "CorralRuntime", "CorralEngine", "CorralClient", "CorralThreads",
                // Not CorralSystemd: linking libsystemd (and the six libraries it loads) cost
                // every `corral run` tens of milliseconds of start-up; doctor loads it itself.
                "CorralWatcher", "CorralSeccomp", "CorralLinux",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            // scripts/build-release links it position-dependent (-no-pie): see there.
            swiftSettings: strict
        ),

        // Benchmarks that need a real cgroup v2 kernel (scripts/bench-reaction).
        .executableTarget(
            name: "corral-bench",
            dependencies: [
                "CorralAPI", "CorralCore", "CorralCgroup", "CorralEngine", "CorralLinux", "CorralRuntime", "CorralServer", "CorralStore",
                "CorralThreads",
                "CorralTestSupport", "CorralWatcher",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict
        ),

        // An agent that cooperates through the agent channel (CorralClient).
        .executableTarget(name: "corral-example-agent", dependencies: ["CorralClient", "CorralCore"], swiftSettings: strict),

        // A tiny C load generator for the real-kernel tests and benchmarks:
        // holds memory, spins a CPU, forks. Not installed.
        .executableTarget(name: "corral-stress"),

        .testTarget(
            name: "CorralCoreTests",
            dependencies: ["CorralCore", "CorralTestSupport"],
            resources: [.copy("Fixtures")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "CorralWatcherTests",
            dependencies: ["CorralWatcher", "CorralCgroup", "CorralCore"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "CorralStoreTests",
            dependencies: ["CorralStore", "CorralCore"],
            // Read from the source tree (#filePath): a database written by the previous release.
            exclude: ["Fixtures"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "CorralEngineTests",
            dependencies: ["CorralAPI", "CorralEngine", "CorralCgroup", "CorralCore", "CorralWatcher", "CorralTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "CorralServerTests",
            dependencies: [
                "CorralAPI", "CorralServer", "CorralEngine", "CorralClient", "CorralCgroup", "CorralCore", "CorralTestSupport",
                "CorralThreads", "CorralConfig",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "CorralJournalTests",
            dependencies: ["CorralJournal", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "CorralConfigTests",
            dependencies: ["CorralConfig", "CorralCore"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "CorralCgroupTests",
            dependencies: ["CorralCgroup", "CorralCore", "CorralTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(name: "CorralThreadsTests", dependencies: ["CorralThreads"], swiftSettings: strict),
        .testTarget(
            name: "CorralLinuxTests",
            dependencies: ["CorralLinux", .product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: strict
        ),
        // Spawning (the cgroup.procs fallback against a stand-in directory) and supervising on this host.
        .testTarget(
            name: "CorralRuntimeTests",
            dependencies: [
                "CorralRuntime", "CorralCgroup", "CorralCore", "CorralLinux", "CorralSeccomp",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict
        ),
        // For tests and benchmarks: fake cgroup filesystems, usage series, and
        // starting processes and reading their output, for the tests that run `corral`.
        .target(
            name: "CorralTestSupport",
            dependencies: ["CorralCgroup", "CorralCore", .product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: strict
        ),
        // Drives the real `corral` binary against a real cgroup v2 kernel;
        // enabled only by scripts/e2e (VM or native), never silently skipped there.
        .testTarget(
            name: "CorralE2ETests",
            dependencies: [
                "CorralCore", "CorralCgroup", "CorralTestSupport",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict
        ),
        // Runs the built `corral` binary on this host: bad input, help, doctor, config validate;
        // and `corral run`'s own parser against swift-argument-parser's (`@testable import corral`).
        .testTarget(
            name: "CorralCLITests",
            dependencies: [
                "CorralCore", "CorralLinux", "CorralTestSupport", "corral",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
    ]
)
