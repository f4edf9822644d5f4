# Sourced by the scripts that run Python tools from PyPI (check-manifests, fuzz-api).
#   ensure_venv DIR REQUIREMENTS PROGRAM
# makes a virtual environment at DIR on first use, installs REQUIREMENTS (pinned) into it, and
# installs them again when the file changes (a copy is kept in DIR). PROGRAM names the caller in
# messages. Needs python3 with venv (Debian: apt-get install python3-venv, or scripts/setup).
ensure_venv() {
    local venv=$1 requirements=$2 program=$3
    local stamp=$venv/corral-requirements.txt
    command -v python3 >/dev/null || { echo "$program: python3 is missing (apt-get install python3 python3-venv)" >&2; return 1; }
    # A venv whose pip does not run (made without ensurepip, or by another Python since removed)
    # is made again; it holds nothing but what was installed here.
    if [[ -d $venv ]] && ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
        echo "$program: $venv is broken (no working pip): making it again" >&2
        rm -rf "$venv"
    fi
    if [[ ! -d $venv ]]; then
        if ! python3 -m venv "$venv"; then
            rm -rf "$venv"
            echo "$program: 'python3 -m venv' failed: on Debian install python3-venv (apt-get install python3-venv, or scripts/setup)" >&2
            return 1
        fi
    fi
    if ! cmp -s "$requirements" "$stamp"; then
        echo "$program: installing $requirements into $venv" >&2
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" || {
            echo "$program: pip could not install $requirements (PyPI unreachable?)" >&2
            return 1
        }
        cp "$requirements" "$stamp"
    fi
}
