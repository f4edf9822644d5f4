/// Where this process runs when that is a container, as far as cgroups are concerned: read
/// at the edge (HostProbe.container), judged here.
public struct ContainerContext: Equatable, Codable, Sendable {
    /// The runtime's trace, best first: "kubernetes" ($KUBERNETES_SERVICE_HOST), "podman"
    /// (/run/.containerenv), "docker" (/.dockerenv), the value of $container (systemd's
    /// convention: "podman", "lxc", "oci", …); nil when none is seen.
    public var runtime: String?
    /// The cgroup2 mount's top is a cgroup below the hierarchy's root (it has a cgroup.type):
    /// a private cgroup namespace, whose top is the container's own cgroup.
    public var privateCgroupNamespace: Bool
    /// /sys/fs/cgroup is mounted read-only (the default of Docker, containerd, CRI-O and
    /// Kubernetes for unprivileged containers).
    public var cgroupMountReadOnly: Bool

    public init(runtime: String?, privateCgroupNamespace: Bool, cgroupMountReadOnly: Bool) {
        self.runtime = runtime
        self.privateCgroupNamespace = privateCgroupNamespace
        self.cgroupMountReadOnly = cgroupMountReadOnly
    }

    /// Whether this looks like a container at all.
    public var isContainer: Bool { runtime != nil || privateCgroupNamespace }

    /// How to get a writable cgroup2 mount, per runtime; the detected runtime's way first.
    public var writableCgroupFixes: [(runtime: String, fix: String)] {
        let all: [(String, String)] = [
            ("kubernetes", ContainerContext.kubernetesFix),
            ("podman", "podman run --cgroupns=private --systemd=always (or mount cgroup2 writable: --mount type=cgroup2,rw)"),
            ("docker", "Docker 28 or later: docker run --cgroupns=private --security-opt writable-cgroups=true"),
            (
                "crun",
                "crun: the annotation run.oci.delegate-cgroup=supervisor, with a private cgroup namespace and a cgroup mount without 'ro'"
            ),
        ]
        guard let runtime, let index = all.firstIndex(where: { $0.0 == runtime }) else { return all }
        var ordered = all
        ordered.insert(ordered.remove(at: index), at: 0)
        return ordered
    }

    static let kubernetesFix =
        "Kubernetes: a privileged sidecar (securityContext.privileged: true), or on CRI-O the annotation io.kubernetes.cri-o.cgroup2-mount-hierarchy-rw: \"true\" (allowed in the runtime's allowed_annotations), or on containerd 2.1+ the runtime option cgroup_writable = true; where none is possible, run Corral per node as the DaemonSet of deploy/kubernetes/daemonset.yaml"

    /// What stops Corral from managing cgroups here, with the fix; empty when nothing does.
    public var problems: [HostProblem] {
        guard cgroupMountReadOnly else { return [] }
        let fixes = writableCgroupFixes.map(\.fix).joined(separator: "; or ")
        let what = isContainer ? "this container's /sys/fs/cgroup is mounted read-only" : "/sys/fs/cgroup is mounted read-only"
        return [
            HostProblem(
                .fatal,
                "\(what)\(runtime.map { " (\($0))" } ?? ""): Corral cannot create cgroups or write limits",
                fix: "give the container a private cgroup namespace with a writable cgroup2 mount: \(fixes)")
        ]
    }
}

/// A directory Corral must write (its state, its socket's) that it cannot: named with the fix.
public func unwritableDirectoryProblem(_ path: String, purpose: String, flag: String, inContainer: Bool, reason: String) -> HostProblem {
    HostProblem(
        .fatal, "cannot write \(purpose) \(path): \(reason)",
        fix: inContainer
            ? "mount a writable volume at \(path) (Kubernetes: an emptyDir or a PersistentVolumeClaim; docker/podman: -v NAME:\(path)), or give \(flag) a path on one"
            : "create \(path) writable for this user, or give \(flag) another directory")
}
