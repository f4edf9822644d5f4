import CorralConfig
import CorralCore
import Testing

/// `security:` of groups and agents.
@Suite("Security configuration")
struct SecurityConfigTests {
    @Test func groupsDefaultToTheStandardPolicy() throws {
        let built = try #require(configuration(of: "intervals:\n  sampling: 1s\n"))
        for group in built.groups.values { #expect(group.security == .standard) }
        #expect(SecurityPolicy.standard.seccomp.base == .default && SecurityPolicy.standard.seccomp.action == .errno)
        #expect(SecurityPolicy.standard.noNewPrivileges && SecurityPolicy.standard.cgroupNamespace)
    }

    @Test func aGroupAndAnAgentSetTheirPolicies() throws {
        let text = """
            groups:
              lightweight_agent:
                security:
                  user: nobody
                  seccomp: {base: strict, deny: [ptrace, chown], allow: [personality]}
                  seccomp_action: kill
                  no_new_privileges: true
                  cgroup_namespace: false
                  rlimits: {nofile: 1024:4096, core: 0, stack: unlimited}
            agents:
              tool-1:
                group: lightweight_agent
                security: {seccomp: none, user: "65534"}
            """
        let parsed = try #require(configuration(of: text))
        let group = try #require(parsed.groups["lightweight_agent"]).security
        #expect(group.user == "nobody")
        #expect(group.seccomp == SeccompPolicy(base: .strict, deny: ["ptrace", "chown"], allow: ["personality"], action: .kill))
        #expect(!group.cgroupNamespace)
        #expect(group.rlimits[.nofile] == RlimitValue(soft: 1024, hard: 4096))
        #expect(group.rlimits[.core] == RlimitValue(soft: 0, hard: 0))
        #expect(group.rlimits[.stack] == RlimitValue(soft: nil, hard: nil))
        let agent = try #require(parsed.security(agent: "tool-1", group: "lightweight_agent"))
        #expect(agent.seccomp.base == .none && agent.user == "65534")
        #expect(agent.rlimits[.nofile] == RlimitValue(soft: 1024, hard: 4096), "unset fields come from the group")
        var flags = SecurityOverride()
        flags.seccomp = SeccompPolicy(base: .default)
        #expect(parsed.security(agent: "tool-1", group: "lightweight_agent", flags: flags)?.seccomp.base == .default)
        #expect(parsed.groups["standard_agent"]?.security == .standard)
    }

    @Test func anUnknownSyscallIsNamedWithItsPlaceAndASuggestion() throws {
        let text = "groups:\n  standard_agent:\n    security:\n      seccomp: {deny: [ptrace, mountt]}\n"
        let found = issues(of: text)
        try #require(found.count == 1)
        #expect(found[0].key == "groups.standard_agent.security.seccomp.deny")
        #expect(found[0].value == "mountt")
        #expect((found[0].line, found[0].column) == (4, 32))
        #expect(found[0].message.contains("unknown syscall 'mountt'") && found[0].message.contains("did you mean 'mount'?"))
    }

    @Test func badValuesAreEachNamed() throws {
        let text = """
            groups:
              standard_agent:
                security:
                  seccomp: paranoid
                  seccomp_action: trap
                  no_new_privileges: maybe
                  rlimits: {nofiles: 10, core: 10:5}
                  shell: /bin/sh
            agents:
              a1:
                security: {user: "-rf"}
            """
        let found = issues(of: text)
        let keys = found.map(\.key)
        #expect(
            keys == [
                "groups.standard_agent.security.seccomp", "groups.standard_agent.security.seccomp_action",
                "groups.standard_agent.security.no_new_privileges", "groups.standard_agent.security.rlimits.nofiles",
                "groups.standard_agent.security.rlimits.core", "groups.standard_agent.security.shell", "agents.a1.security.user",
            ], "\(found)")
        #expect(found.first?.accepted?.contains("default, strict, none") == true)
        #expect(found.first { $0.key.hasSuffix("rlimits.core") }?.message.contains("soft limit is above the hard limit") == true)
    }
}

@Suite("Mount table")
struct MountTableTests {
    @Test func theCgroup2MountsOptionsAreFoundTheLastOneWinning() {
        let mounts = """
            sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
            cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0
            cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate,memory_recursiveprot 0 0
            cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nosuid,nodev,noexec,relatime 0 0
            """
        #expect(MountTable.cgroup2Options(mounts)?.contains("nsdelegate") == true)
        #expect(MountTable.cgroup2Options(mounts, at: "/sys/fs/cgroup/unified")?.contains("nsdelegate") == false)
        #expect(MountTable.cgroup2Options("tmpfs /sys/fs/cgroup tmpfs ro 0 0\n") == nil)
    }
}

@Suite("Security flags")
struct SecurityFlagTests {
    /// --seccomp changes the profile only: the group's lists and action stay; none drops the lists.
    @Test func aFlagsProfileKeepsTheGroupsListsAndAction() throws {
        let group = SecurityPolicy(seccomp: SeccompPolicy(base: .default, deny: ["chown"], allow: ["ptrace"], action: .kill))
        var flags = SecurityOverride()
        flags.seccompBase = .strict
        #expect(flags.apply(to: group).seccomp == SeccompPolicy(base: .strict, deny: ["chown"], allow: ["ptrace"], action: .kill))
        flags.seccompBase = SeccompProfile.none
        #expect(!flags.apply(to: group).seccomp.filters)
    }

    @Test func clone3CannotBeAllowed() throws {
        let found = issues(of: "groups:\n  standard_agent:\n    security:\n      seccomp: {allow: [clone3]}\n")
        try #require(found.count == 1)
        #expect(found[0].message.contains("clone3 cannot be allowed"))
    }

    /// personality(0xffffffff) asks; setting ADDR_NO_RANDOMIZE is refused.
    @Test func thePersonalityQueryIsNotARuleMatch() {
        let rules = SyscallProfiles.rules(for: .default).filter { $0.syscall == "personality" }
        func matches(_ value: UInt64) -> Bool {
            rules.contains { rule in
                guard case .maskedEqual(let mask, let expected) = rule.condition?.operation else { return false }
                return value & mask == expected
            }
        }
        #expect(!matches(0xffff_ffff))
        #expect(!matches(0) && !matches(8))
        #expect(matches(0x0040000) && matches(0x0400000 | 8))
    }
}

@Suite("User database files")
struct UserDatabaseTests {
    let passwd = "root:x:0:0:root:/root:/bin/bash\n# comment\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nbad:line\n"
    let group = "root:x:0:\nsudo:x:27:alice,nobody\nnogroup:x:65534:\nstaff:x:50:nobodyx\n"

    @Test func usersByNameAndUid() {
        #expect(UserDatabase.user("nobody", in: passwd) == .init(name: "nobody", uid: 65534, gid: 65534, home: "/nonexistent"))
        #expect(UserDatabase.user("0", in: passwd)?.name == "root")
        #expect(UserDatabase.user("ghost", in: passwd) == nil)
        #expect(UserDatabase.group("nogroup", in: group) == 65534)
        #expect(UserDatabase.groups(of: "nobody", primary: 65534, in: group) == [65534, 27], "member lists match whole names only")
    }
}

/// `priority:` of groups and agents.
@Suite("Priority configuration")
struct PriorityConfigTests {
    @Test func groupsAndAgentsSetPriorities() throws {
        let text = """
            groups:
              lightweight_agent:
                priority: 2
            agents:
              judge:
                group: lightweight_agent
                priority: 9
            """
        let parsed = try #require(configuration(of: text))
        #expect(parsed.groups["lightweight_agent"]?.priority == Priority(rawValue: 2))
        #expect(parsed.groups["standard_agent"]?.priority == .standard)
        #expect(parsed.priority(agent: "judge", group: "lightweight_agent")! == (Priority(rawValue: 9)!, true))
        #expect(parsed.priority(agent: "other", group: "lightweight_agent")! == (Priority(rawValue: 2)!, false))
        #expect(parsed.priority(agent: "other", group: "lightweight_agent", flag: Priority(rawValue: 1))! == (Priority(rawValue: 1)!, true))
        #expect(parsed.priority(agent: "judge", group: "nope") == nil)
    }

    @Test func badPrioritiesAreNamedWithWhatIsAccepted() throws {
        let text = "groups:\n  standard_agent:\n    priority: 11\nagents:\n  a1:\n    priority: high\n"
        let found = issues(of: text)
        #expect(found.map(\.key) == ["groups.standard_agent.priority", "agents.a1.priority"], "\(found)")
        #expect(found.map(\.message) == ["out of range", "not a whole number"])
        #expect(found.first?.accepted == Priority.acceptedText)
        #expect((found.first?.line, found.first?.column) == (3, 15))
    }
}

/// `host_pressure:` and `admission:`.
@Suite("Host pressure and admission configuration")
struct HostPressureConfigTests {
    @Test func everyKeyIsRead() throws {
        let text = """
            admission: refuse
            host_pressure:
              enabled: true
              memory_high: 80%
              memory_critical: 90%
              memory_pressure: 15%
              cpu_pressure: 85%
              io_pressure: off
              step_interval: 2s
              quiet_period: 30s
              recovery_interval: 10s
              protect_above: 6
              terminate: true
            """
        let parsed = try #require(configuration(of: text))
        #expect(parsed.admission == .refuse)
        let policy = parsed.hostPressure
        #expect(policy.memoryHigh == 0.8 && policy.memoryCritical == 0.9)
        #expect(policy.memoryPressure == 15 && policy.cpuPressure == 85 && policy.ioPressure == nil)
        #expect(policy.stepInterval == .seconds(2) && policy.quietPeriod == .seconds(30) && policy.recoveryInterval == .seconds(10))
        #expect(policy.protectAbove == Priority(rawValue: 6) && policy.terminate)
        #expect(CorralConfiguration.builtIn.hostPressure == .standard && CorralConfiguration.builtIn.admission == .allow)
    }

    @Test func badValuesAreNamed() throws {
        let text = """
            admission: wait
            host_pressure:
              memory_high: 97%
              memory_pressure: lots
              terminate: sometimes
              protect_above: 12
              grace: 5s
            """
        let found = issues(of: text)
        #expect(
            found.map(\.key) == [
                "admission", "host_pressure.memory_high", "host_pressure.memory_pressure", "host_pressure.terminate",
                "host_pressure.protect_above", "host_pressure.grace",
            ], "\(found)")
        #expect(found.first?.message == "unknown policy" && found.first?.accepted?.contains("queue (hold it") == true)
        #expect(found[1].message == "memory_high ≤ memory_critical must hold")
    }
}
