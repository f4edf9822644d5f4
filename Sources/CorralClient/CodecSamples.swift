/// Answers of the daemon as it writes them (`CorralClient.encoder`), for warming
/// a client's decoders before the real answers arrive: a process's first decode
/// of a type instantiates its generic metadata and looks up its conformances,
/// each lookup a scan of the binary's 5,000 conformance records. Written out
/// here rather than encoded from samples at run time, which cost `corral run`
/// 6 M instructions of encoding it never otherwise does (callgrind). A test
/// encodes the same samples and compares, so a change of the wire format
/// cannot leave these behind.
public enum CodecSamples {
    /// An agent's row (`POST /v1/agents`, `GET /v1/agents/ID`): a registered
    /// `true` in standard_agent with the standard limits and security.
    public static let agentRecord = #"""
        {"cgroup":"\/","command":["true"],"created_at":"1970-01-01T00:00:00.000Z","group":"standard_agent","id":"warm",\#
        "limits":{"cpu":{"action":"throttle","hard":30,"soft":15},"memory":{"action":"throttle","hard":500000000,\#
        "soft":200000000},"processes":{"action":"scale_down","hard":100,"soft":50}},"origin":"registered","overrides":{},\#
        "priority":5,"priority_is_own":false,"security":{"capabilities":"default","cgroup_namespace":true,\#
        "no_new_privileges":true,"rlimits":{},"seccomp":{"action":"errno","allow":[],"base":"default","deny":[]}},\#
        "state":"starting"}
        """#

    /// A list of enforcement records (`GET /v1/history`, the `records` of a
    /// finished answer): one warning.
    public static let records = #"""
        {"records":[{"action":"warn","agent":"warm","at":"1970-01-01T00:00:00.000Z","current":1,"details":"",\#
        "kind":"soft","limit":1,"resource":"memory","succeeded":true}]}
        """#
}
