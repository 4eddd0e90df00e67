# Shared by the bench scripts (`. benches/lib.sh` from the repository root):
# the build to run, a scratch directory, ports, the demo config and
# starting zentrale. Sourced, never run; it sets no shell options.

# bench_bin PROFILE: BIN, or the zentrale of PROFILE (`release`, `dist`)
# built first. BIN=... runs another build (A/B comparisons).
bench_bin() {
  if [ -z "${BIN:-}" ]; then
    cargo build --profile "$1" --quiet
    BIN=target/$1/zentrale
  fi
}

# bench_work PIDVAR...: WORK, a scratch directory removed at exit, when
# the processes whose ids the named variables hold (ZPID, ...) are killed.
bench_work() {
  WORK=$(mktemp -d)
  BENCH_PIDS="$*"
  trap bench_cleanup EXIT
}

bench_cleanup() {
  local name pids=()
  for name in $BENCH_PIDS; do
    [ -n "${!name:-}" ] && pids+=("${!name}")
  done
  ((${#pids[@]} == 0)) || kill "${pids[@]}" 2>/dev/null || true
  rm -rf "$WORK"
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# demo_config DIR: the demo config (zentrale.yaml, its dialplans, a link
# to the prompts) copied into DIR, for the bench to edit.
demo_config() {
  mkdir -p "$1"
  cp zentrale.yaml "$1/"
  cp -r dialplans "$1/"
  ln -s "$PWD/sounds" "$1/sounds"
}

# wait_http PORT [TRIES] [PAUSE]: until something accepts TCP on
# 127.0.0.1:PORT, TRIES times (50) PAUSE seconds (0.1) apart; fails after.
wait_http() {
  local i
  for i in $(seq "${2:-50}"); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep "${3:-0.1}"
  done
  return 1
}

# start_zentrale CONFIG RTP_PORTS [ARGS...]: runs BIN with CONFIG on fresh
# loopback ports (SIP_PORT, HTTP_PORT), RUST_LOG=${LOG:-warn}, its log in
# WORK/zentrale.log, and waits until it serves HTTP; ZPID is its id.
start_zentrale() {
  local config=$1 rtp=$2; shift 2
  SIP_PORT=$(free_port); HTTP_PORT=$(free_port)
  RUST_LOG=${LOG:-warn} "$BIN" run --config "$config" --sip-listen "127.0.0.1:$SIP_PORT" \
    --http-listen "127.0.0.1:$HTTP_PORT" --rtp-ports "$rtp" "$@" >"$WORK/zentrale.log" 2>&1 &
  ZPID=$!
  wait_http "$HTTP_PORT" || {
    echo "zentrale did not start:" >&2; cat "$WORK/zentrale.log" >&2; exit 1
  }
}

# stop_zentrale: ends ZPID and waits for it.
stop_zentrale() { kill "$ZPID"; wait "$ZPID" 2>/dev/null || true; ZPID=; }

# peak_rss_kib: zentrale's peak resident memory (VmHWM) in KiB.
peak_rss_kib() { awk '/^VmHWM/ {print $2}' "/proc/$ZPID/status"; }
