#!/usr/bin/env bash
# The README's test command: installs the real test peers when they are
# missing (SIPp, baresip, Prometheus/promtool, fail2ban-regex, openssl,
# systemd-analyze, Chromium and its WebDriver; Debian packages), then runs
# every test target. Tests only talk to 127.0.0.0/8.
set -euo pipefail

cd "$(dirname "$0")/.."

missing=()
command -v sipp >/dev/null 2>&1 || missing+=(sip-tester)
command -v baresip >/dev/null 2>&1 || missing+=(baresip)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v fail2ban-regex >/dev/null 2>&1 || missing+=(fail2ban)
# The TLS tests make their certificates with it.
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# systemd-analyze and systemd-sysusers check deploy/zentrale.service (tests/deploy.rs).
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
# The wallboard's browser tests (tests/wallboard.rs): headless Chromium through WebDriver.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)

if ((${#missing[@]})); then
    echo "installing test peers: ${missing[*]}" >&2
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || { echo "need root or sudo to install ${missing[*]}" >&2; exit 1; }
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# `sipp -v` exits non-zero even when it works: judge by what it prints.
sipp_version=$(sipp -v 2>&1 || true)
[[ $sipp_version == *"SIPp v3."* ]] || { echo "sipp does not run: $sipp_version" >&2; exit 1; }

# Unit, integration and bench-smoke tests, then the examples in the docs
# (`--all-targets` does not include doc tests).
cargo test --release --all-targets "$@"
exec cargo test --release --doc "$@"
