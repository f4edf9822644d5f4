# Shared by the bash e2e suites (Tests/systemd/suite.sh, Tests/container/suite.sh): sourced.
# check NAME COMMAND...: runs it, counts it and prints "ok"/"FAIL" with its time; a failing
# check prints what it saw (through `note`). until_true SECONDS COMMAND...: polls every 0.2 s.
passed=0
failed=0
failures=()
note() { echo "     $*"; }
check() {
    local name=$1 started=$SECONDS
    shift
    if "$@"; then
        passed=$((passed + 1))
        echo "ok   $name ($((SECONDS - started)) s)"
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "FAIL $name ($((SECONDS - started)) s)"
    fi
}
until_true() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}
