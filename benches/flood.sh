#!/usr/bin/env bash
# A SIP flood at the highest rate one UDP socket can send, for 10 s, and a
# normal call placed in the middle of it (issue 16, item 2). Loopback only.
#
#   benches/flood.sh [MODE] [KIND]
#
#   MODE  untrusted  the flood comes from 127.0.0.2, an address that is no
#                    trunk source: sip.limits' per-source rate drops it
#                    before parsing (the default)
#         trunk      the flood comes from 127.0.0.1, the trunk's own address:
#                    the trunk budget (trunk_requests_per_sec) applies
#         unlimited  from 127.0.0.2 with the rate limits lifted, so every
#                    request is parsed and answered: what the stateless
#                    answers and the transaction caps alone hold
#   KIND  options (default), invite or register: distinct requests (each
#         with its own branch and Call-ID)
#
# Prints what the flooder sent, zentrale's RSS over time and its peak
# (VmHWM), live transactions and refusals after the flood, whether the call
# (INVITE from the trunk to 115, ACK, 3 s of listening, BYE) was answered
# and how many RTP packets of the greeting it heard, and whether /healthz
# answered during the flood. Bounded: SECONDS_ (10) of flood, at most
# MAX_COUNT (50 million) requests. BIN runs another build.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-untrusted}
KIND=${2:-options}
SECONDS_=${SECONDS_:-10}
MAX_COUNT=${MAX_COUNT:-50000000}
case "$MODE" in untrusted|trunk|unlimited) ;; *) echo "unknown MODE $MODE" >&2; exit 2;; esac
case "$KIND" in options|invite|register) ;; *) echo "unknown KIND $KIND" >&2; exit 2;; esac

. benches/lib.sh
bench_bin release
bench_work ZPID FPID
cc -O2 -o "$WORK/flood" benches/flood.c

CONFIG_DIR="$WORK/config"
demo_config "$CONFIG_DIR"
# Only 127.0.0.1 is the carrier; the rest of loopback is "the internet".
sed -i 's|sources: \[127.0.0.0/8\]|sources: [127.0.0.1/32]|' "$CONFIG_DIR/zentrale.yaml"
if [ "$MODE" = unlimited ]; then
  sed -i -e 's/^\(    requests_per_sec:\) 200 /\1 1000000000 /' \
         -e 's/^\(    requests_burst:\) 400 /\1 1000000000 /' "$CONFIG_DIR/zentrale.yaml"
fi
FLOOD_SRC=127.0.0.2
[ "$MODE" = trunk ] && FLOOD_SRC=127.0.0.1

start_zentrale "$CONFIG_DIR/zentrale.yaml" 31000-31999 --clock 2026-11-23T10:00:00+01:00

# The call: a trunk caller with SIP retransmissions (the flood may cost it
# datagrams), counting the RTP zentrale sends it.
cat >"$WORK/call.py" <<'PY'
import random, socket, sys, time
port = int(sys.argv[1])
sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); sip.bind(("127.0.0.1", 0))
rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); rtp.bind(("127.0.0.1", 0))
me, media = sip.getsockname()[1], rtp.getsockname()[1]
dst = ("127.0.0.1", port)
cid, tag = "call%d@flood" % random.getrandbits(48), "%x" % random.getrandbits(48)
def req(method, cseq, branch, to_tag="", body=""):
    ctype = "Content-Type: application/sdp\r\n" if body else ""
    return ("%s sip:115@127.0.0.1:%d SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%s;rport\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:0301234567@127.0.0.1>;tag=%s\r\nTo: <sip:115@127.0.0.1>%s\r\n"
            "Call-ID: %s\r\nCSeq: %d %s\r\nContact: <sip:caller@127.0.0.1:%d>\r\n%sContent-Length: %d\r\n\r\n%s"
            % (method, port, me, branch, tag, (";tag=" + to_tag) if to_tag else "", cid, cseq, method, me, ctype, len(body), body)).encode()
sdp = ("v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n" % media)
def transact(data, method, until):
    wait, start = 0.5, time.time()
    sip.sendto(data, dst); nxt = start + wait
    while time.time() < until:
        sip.settimeout(max(0.01, min(nxt, until) - time.time()))
        try:
            msg = sip.recv(65535).decode(errors="replace")
        except socket.timeout:
            if time.time() >= nxt:
                sip.sendto(data, dst); wait = min(wait * 2, 4); nxt = time.time() + wait
            continue
        head = msg.split("\r\n\r\n", 1)[0]
        if " %s" % method not in head.split("CSeq:", 1)[-1].split("\r\n", 1)[0]:
            continue
        code = int(msg.split(" ", 2)[1])
        if code >= 200:
            return code, msg, time.time() - start
    return None, "", time.time() - start
t0 = time.time()
code, ok, took = transact(req("INVITE", 1, "i%x" % random.getrandbits(32), body=sdp), "INVITE", t0 + 10)
if code != 200:
    print("call: INVITE answered %s after %.2f s" % (code, took)); sys.exit(1)
to_tag = ok.split("\r\nTo:", 1)[1].split("\r\n", 1)[0].split("tag=", 1)[1].split(";")[0]
sip.sendto(req("ACK", 1, "a%x" % random.getrandbits(32), to_tag), dst)
rtp.settimeout(0.2); heard, end = 0, time.time() + 3
while time.time() < end:
    try:
        if len(rtp.recv(2048)) > 12: heard += 1
    except socket.timeout:
        pass
bye, _, _ = transact(req("BYE", 2, "b%x" % random.getrandbits(32), to_tag), "BYE", time.time() + 10)
print("call: answered 200 after %.2f s, heard %d RTP packets in 3 s (150 expected), BYE answered %s"
      % (took, heard, bye))
PY

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$ZPID/status"; }
echo "zentrale idle: RSS $(( $(rss_kb) / 1024 )) MB"
"$WORK/flood" "$FLOOD_SRC" 127.0.0.1 "$SIP_PORT" "$SECONDS_" "$MAX_COUNT" "$KIND" >"$WORK/flood.out" &
FPID=$!
T0=$(date +%s%N)
sleep 3
python3 "$WORK/call.py" "$SIP_PORT" >"$WORK/call.out" 2>&1 &
CPID=$!
HEALTH="no answer"
while kill -0 "$FPID" 2>/dev/null; do
  MS=$(( ($(date +%s%N) - T0) / 1000000 ))
  if [ "$HEALTH" = "no answer" ] && [ "$MS" -ge 4000 ]; then
    HEALTH=$(curl -s -o /dev/null -w '%{http_code} in %{time_total} s' --max-time 2 "127.0.0.1:$HTTP_PORT/healthz" || true)
  fi
  printf 'flood %4d ms: RSS %d MB\n' "$MS" $(( $(rss_kb) / 1024 ))
  sleep 1
done
wait "$FPID" || true; FPID=
wait "$CPID" || true
cat "$WORK/flood.out"
cat "$WORK/call.out"
echo "/healthz during the flood: $HEALTH"
METRICS=$(curl -s "127.0.0.1:$HTTP_PORT/metrics")
echo "after the flood:"
echo "$METRICS" | grep -E '^zentrale_sip_(transactions|rejected_total)|^zentrale_sip_responses_total' || true
echo "zentrale peak RSS (VmHWM): $(( $(peak_rss_kib) / 1024 )) MB; CPU $(awk -v t="$(getconf CLK_TCK)" '{printf "%.1f s", ($14 + $15) / t}' "/proc/$ZPID/stat")"
stop_zentrale
