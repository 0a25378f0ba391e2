#!/usr/bin/env bash
# Installs everything vmxsim needs to build and test, with apt-get only.
#
# Unicorn >= 2.1 is required (DESIGN §2: the TLB-fill hook). Debian bookworm
# ships 2.0.1; there we take libunicorn-dev/libunicorn2t64 2.1.x from Debian
# trixie through a *private* apt configuration that points at the same mirror
# the system already uses. The system's apt sources are never modified.
#
# Safe to run repeatedly: it installs only what is missing.
set -euo pipefail

UNICORN_MIN=2.1
APT_TMP=
trap '[ -n "$APT_TMP" ] && rm -rf "$APT_TMP"' EXIT
PKGS=(cmake make gcc clang binutils pkg-config check libcapstone-dev valgrind)

die() { echo "setup: error: $*" >&2; exit 1; }
say() { echo "setup: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "need root (or sudo) for: $*"; fi; }

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

unicorn_ok() {
    local v
    v=$(pkg-config --modversion unicorn 2>/dev/null) || return 1
    dpkg --compare-versions "$v" ge "$UNICORN_MIN"
}

apt_updated=0
apt_update_once() {
    [ "$apt_updated" = 1 ] && return 0
    as_root apt-get update -qq || die "apt-get update failed"
    apt_updated=1
}

install_base() {
    local missing=()
    for p in "${PKGS[@]}"; do have_pkg "$p" || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing: ${missing[*]}"
    apt_update_once
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
}

# The Debian archive URI the system already uses (deb822 or one-line format).
system_mirror() {
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        uri=$(awk '/^URIs:/ {u=$2} /^Suites:/ && u && !/security/ {print u; exit}' "$f")
        [ -n "$uri" ] && { echo "$uri"; return 0; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        uri=$(awk '$1=="deb" && $0 !~ /security/ { for (i=2;i<=NF;i++) if ($i ~ /^(https?|file):/) { print $i; exit } }' "$f")
        [ -n "$uri" ] && { echo "$uri"; return 0; }
    done
    return 1
}

install_unicorn_from_trixie() {
    local mirror dir opts keyring
    mirror=$(system_mirror) || die "cannot find the system's Debian mirror in /etc/apt; install Unicorn >= $UNICORN_MIN by hand (libunicorn-dev from Debian trixie or newer)"
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    [ -r "$keyring" ] || die "no $keyring to verify Debian trixie packages"
    dir=$(mktemp -d /tmp/vmxsim-apt.XXXXXX)
    chmod 755 "$dir"
    APT_TMP=$dir   # removed by the EXIT trap
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
    echo "deb [signed-by=$keyring] $mirror trixie main" > "$dir/sources.list"
    opts=(-o "Dir::Etc::SourceList=$dir/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
          -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache" -o "APT::Sandbox::User=root")
    say "Unicorn >= $UNICORN_MIN not available from the system's suites; fetching it from Debian trixie (private apt config, system sources untouched)"
    as_root apt-get "${opts[@]}" update -qq || die "could not read Debian trixie from $mirror"
    (cd "$dir" && as_root apt-get "${opts[@]}" download libunicorn-dev libunicorn2t64 >/dev/null) \
        || die "could not download libunicorn-dev/libunicorn2t64 from Debian trixie"
    as_root env DEBIAN_FRONTEND=noninteractive dpkg -i "$dir"/*.deb >/dev/null \
        || die "dpkg could not install Unicorn from trixie (it needs libc6 >= 2.34)"
}

install_unicorn() {
    unicorn_ok && return 0
    local cand
    apt_update_once
    cand=$(apt-cache policy libunicorn-dev 2>/dev/null | awk '/Candidate:/ {print $2}')
    if [ -n "$cand" ] && [ "$cand" != "(none)" ] && dpkg --compare-versions "$cand" ge "$UNICORN_MIN"; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libunicorn-dev >/dev/null \
            || die "apt-get install libunicorn-dev failed"
    else
        install_unicorn_from_trixie
    fi
    unicorn_ok || die "Unicorn >= $UNICORN_MIN is still not installed (pkg-config unicorn says: $(pkg-config --modversion unicorn 2>&1))"
}

command -v apt-get >/dev/null || {
    for t in cmake pkg-config as; do command -v $t >/dev/null || die "no apt-get and no $t: install cmake, pkg-config, binutils, Check, Capstone and Unicorn >= $UNICORN_MIN yourself"; done
    unicorn_ok || die "Unicorn >= $UNICORN_MIN is required (pkg-config unicorn)"
    exit 0
}
install_base
install_unicorn
say "ok: unicorn $(pkg-config --modversion unicorn), capstone $(pkg-config --modversion capstone), check $(pkg-config --modversion check)"
