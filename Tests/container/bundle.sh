#!/usr/bin/env bash
# Makes an OCI bundle for crun (the config.json of `crun spec`, edited with jq):
# the root filesystem is what deploy/container/stage-rootfs puts in the image, with this
# machine's /usr (and the bin/lib/sbin symlinks into it) bind-mounted read-only under it, so
# no image registry is needed; the root filesystem itself is read-only as in a pod with
# readOnlyRootFilesystem: true.
#
#   Tests/container/bundle.sh DIR ROLE SHARED [OPTIONS]
#     ROLE sidecar: corrald on a private cgroup namespace with a writable cgroup2 mount,
#                   state on SHARED/state, socket in SHARED/socket
#     ROLE app:     the application container: read-only cgroup mount, uid 10001 in group
#                   corral (gid 990, corrald's --admin-group); only SHARED/socket is shared
#   OPTIONS: --caps default|minimal|LIST   capabilities (default: crun's spec defaults)
#            --memory BYTES --pids N --cpu QUOTA/PERIOD   the container's limits
#            --cgroup PATH  linux.cgroupsPath (default /corral-test/ROLE)
#            --args 'ARGS'  the process' arguments (JSON array)
#            --nofile N     RLIMIT_NOFILE (default: crun's spec, 1024)
#            --tools DIR    bind-mount DIR read-only at /opt/corral-test (the tests' load generator)
#            --ro-cgroup    keep the runtime's read-only cgroup mount (sidecar: a misconfiguration)
#            --no-state     no volume at /var/lib/corral (sidecar: a misconfiguration)
set -euo pipefail
dir=${1:?usage: bundle.sh DIR ROLE SHARED [OPTIONS]}
role=${2:?role}
shared=${3:?shared dir}
shift 3
caps=default memory="" pids="" cpu="" cgroup=/corral-test/$role args="" tools="" ro_cgroup=0 state=1 nofile=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --caps) caps=$2; shift 2 ;;
        --memory) memory=$2; shift 2 ;;
        --pids) pids=$2; shift 2 ;;
        --cpu) cpu=$2; shift 2 ;;
        --cgroup) cgroup=$2; shift 2 ;;
        --args) args=$2; shift 2 ;;
        --tools) tools=$2; shift 2 ;;
        --nofile) nofile=$2; shift 2 ;;
        --ro-cgroup) ro_cgroup=1; shift ;;
        --no-state) state=0; shift ;;
        *) echo "bundle.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
done
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
rm -rf "$dir"
mkdir -p "$dir/rootfs" "$shared/socket" "$shared/state"
"$repo/deploy/container/stage-rootfs" "$dir/rootfs" >/dev/null
stage=$dir/rootfs
mkdir -p "$stage/usr" "$stage/proc" "$stage/sys" "$stage/dev" "$stage/tmp" "$stage/etc" "$stage/root"
for link in bin lib lib64 sbin; do [[ -e $stage/$link ]] || ln -s "usr/$link" "$stage/$link"; done
# A name service for uid 0 and nobody; the image has Debian's own.
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$stage/etc/passwd"
# The group deploy/container/Containerfile adds: the application's CLI runs as uid 10001
# with it as its primary group and corrald takes it as --admin-group (as the manifests do).
printf 'root:x:0:\ncorral:x:990:\nnogroup:x:65534:\n' >"$stage/etc/group"
# The image's binaries live in usr/local/bin: moved aside so that they can be mounted over
# the host's /usr/local/bin once /usr is in place.
mv "$stage/usr/local/bin" "$dir/corral-bin"
rm -rf "$stage/usr/local"

case $caps in
    default) capset='["CAP_AUDIT_WRITE","CAP_KILL","CAP_NET_BIND_SERVICE"]' ;;
    minimal) capset='[]' ;;
    *) capset=$(jq -cn --arg l "$caps" '$l | split(",") | map(select(. != ""))') ;;
esac
crun spec --bundle "$dir"
if [[ $role == sidecar ]]; then
    [[ -n $args ]] || args='["/usr/local/bin/corrald","--socket","/run/corral/corral.sock","--state-dir","/var/lib/corral","--log-target","stderr","--admin-group","corral"]'
    cgmount_ro=$([[ $ro_cgroup == 1 ]] && echo true || echo false)
else
    [[ -n $args ]] || args='["/usr/bin/sleep","infinity"]'
    cgmount_ro=true
fi
jq --argjson args "$args" --argjson caps "$capset" --arg cgroup "$cgroup" --arg bin "$dir/corral-bin" \
    --arg socket "$shared/socket" --arg state "$shared/state" --arg role "$role" --argjson ro "$cgmount_ro" \
    --arg nofile "$nofile" --arg tools "$tools" --argjson withstate "$state" --arg memory "$memory" --arg pids "$pids" --arg cpu "$cpu" '
    .process.terminal = false
    | .process.args = $args
    | .process.env += ["CORRAL_SOCKET=/run/corral/corral.sock", "HOME=/root"]
    | .process.capabilities = {bounding: $caps, effective: $caps, permitted: $caps, ambient: $caps, inheritable: []}
    | .hostname = "corral-" + $role
    | .mounts |= map(if .destination == "/sys/fs/cgroup" and ($ro | not) then .options -= ["ro"] else . end)
    | .mounts += [
        {destination: "/usr", type: "bind", source: "/usr", options: ["rbind", "ro"]},
        {destination: "/usr/local/bin", type: "bind", source: $bin, options: ["rbind", "ro"]},
        {destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "mode=1777", "size=65536k"]},
        {destination: "/run/corral", type: "bind", source: $socket, options: ["rbind", "rw"]}
      ]
    | if $nofile != "" then .process.rlimits = [{type: "RLIMIT_NOFILE", hard: ($nofile | tonumber), soft: ($nofile | tonumber)}] else . end
    | if $tools != "" then .mounts += [{destination: "/opt/corral-test", type: "bind", source: $tools, options: ["rbind", "ro"]}] else . end
    | if $role == "app" then .process.user = {uid: 10001, gid: 990} else . end
    | if $role == "sidecar" and $withstate == 1 then
        .mounts += [{destination: "/var/lib/corral", type: "bind", source: $state, options: ["rbind", "rw"]}]
      else . end
    | .linux.namespaces += [{type: "cgroup"}]
    | .linux.cgroupsPath = $cgroup
    | if $memory != "" then .linux.resources.memory = {limit: ($memory | tonumber)} else . end
    | if $pids != "" then .linux.resources.pids = {limit: ($pids | tonumber)} else . end
    | if $cpu != "" then .linux.resources.cpu = {quota: ($cpu | split("/")[0] | tonumber), period: ($cpu | split("/")[1] | tonumber)} else . end
' "$dir/config.json" >"$dir/config.json.new"
mv "$dir/config.json.new" "$dir/config.json"
