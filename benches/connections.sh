#!/usr/bin/env bash
# Connection abuse against SIP-TCP and HTTP (issue 16, item 3), on
# loopback, bounded in time (DURATION, 30 s) and count:
#   - IDLE (2,500) idle SIP-TCP connections from 40 loopback addresses,
#   - SLOW (200) slowloris connections trickling a header line every second,
#   - PARTIAL (50) connections sending 60 KB of header without its end,
#   - HTTP_IDLE (500) idle HTTP connections and 100 with a partial request head.
# Every 5 s it prints how many connections zentrale holds (its own gauge),
# how many of each kind the client still sees open (connections past the
# caps that never got past the kernel's backlog count as open there), whether a
# normal call (trunk INVITE to 115, greeting RTP, BYE) is answered with
# audio and whether /healthz answers. The daemon runs the demo config with
# the trunk on 127.0.0.1 only and idle_timeout_secs lowered to 20 (SIP) so
# the idle closes fall inside the run; everything else at its default.
# BIN runs another build.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-30}
. benches/lib.sh
bench_bin release
bench_work ZPID
ulimit -n "$(ulimit -Hn)"
CONFIG_DIR="$WORK/config"
demo_config "$CONFIG_DIR"
sed -i -e 's|sources: \[127.0.0.0/8\]|sources: [127.0.0.1/32]|' \
       -e 's/^\(    idle_timeout_secs:\) 120 /\1 20 /' "$CONFIG_DIR/zentrale.yaml"
start_zentrale "$CONFIG_DIR/zentrale.yaml" 31000-31999 --clock 2026-11-23T10:00:00+01:00
python3 - "$SIP_PORT" "$HTTP_PORT" "$DURATION" "${IDLE:-2500}" "${SLOW:-200}" "${PARTIAL:-50}" "${HTTP_IDLE:-500}" <<'PY'
import random, select, socket, sys, time, urllib.request
sip_port, http_port, duration, n_idle, n_slow, n_partial, n_http = map(int, sys.argv[1:8])
def conn(port, i):
    s = socket.socket()
    s.bind(("127.0.0.%d" % (2 + i % 40), 0))
    s.setblocking(False)
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    return s
def open_ones(socks):
    """Sockets the server has not closed (a read gives EOF or an error)."""
    alive = []
    poller = select.poll()
    for s in socks:
        poller.register(s, select.POLLIN)
    readable = {fd for fd, _ in poller.poll(0)}
    for s in socks:
        if s.fileno() not in readable:
            alive.append(s)
            continue
        try:
            if s.recv(65536) == b"":
                s.close(); continue
        except BlockingIOError:
            pass
        except OSError:
            s.close(); continue
        alive.append(s)
    return alive
def send(s, data):
    try:
        s.send(data); return True
    except OSError:
        return False
groups = {
    "sip idle": [conn(sip_port, i) for i in range(n_idle)],
    "sip slowloris": [conn(sip_port, i) for i in range(n_slow)],
    "sip partial 60 KB": [conn(sip_port, i) for i in range(n_partial)],
    "http idle": [conn(http_port, i) for i in range(n_http)],
    "http partial head": [conn(http_port, i) for i in range(100)],
}
time.sleep(0.5)
for s in groups["sip slowloris"]:
    send(s, b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.9:9;branch=z9hG4bKslow\r\n")
pad = b"OPTIONS sip:x SIP/2.0\r\nX-Pad: " + b"a" * 60000 + b"\r\n"
for s in groups["sip partial 60 KB"]:
    send(s, pad)
for s in groups["http partial head"]:
    send(s, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
def call():
    sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); sip.bind(("127.0.0.1", 0))
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); rtp.bind(("127.0.0.1", 0))
    me, media = sip.getsockname()[1], rtp.getsockname()[1]
    cid, tag = "c%x@abuse" % random.getrandbits(48), "%x" % random.getrandbits(32)
    def req(method, cseq, to_tag="", body=""):
        return ("%s sip:115@127.0.0.1:%d SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%x;rport\r\n"
                "From: <sip:0301234567@127.0.0.1>;tag=%s\r\nTo: <sip:115@127.0.0.1>%s\r\nCall-ID: %s\r\n"
                "CSeq: %d %s\r\nContact: <sip:c@127.0.0.1:%d>\r\n%sContent-Length: %d\r\n\r\n%s"
                % (method, sip_port, me, random.getrandbits(32), tag, (";tag=" + to_tag) if to_tag else "",
                   cid, cseq, method, me, "Content-Type: application/sdp\r\n" if body else "", len(body), body)).encode()
    sdp = ("v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           "m=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n" % media)
    sip.sendto(req("INVITE", 1, body=sdp), ("127.0.0.1", sip_port))
    sip.settimeout(5); code = None
    try:
        while True:
            m = sip.recv(65535).decode(errors="replace")
            if "INVITE" in m.split("CSeq:", 1)[1].split("\r\n", 1)[0] and int(m.split(" ", 2)[1]) >= 200:
                code = int(m.split(" ", 2)[1]); break
    except socket.timeout:
        return "INVITE unanswered"
    if code != 200:
        return "INVITE answered %d" % code
    to_tag = m.split("\r\nTo:", 1)[1].split("\r\n", 1)[0].split("tag=", 1)[1].split(";")[0]
    sip.sendto(req("ACK", 1, to_tag), ("127.0.0.1", sip_port))
    rtp.settimeout(0.2); heard, end = 0, time.time() + 1
    while time.time() < end:
        try:
            heard += len(rtp.recv(2048)) > 12
        except socket.timeout:
            pass
    sip.sendto(req("BYE", 2, to_tag), ("127.0.0.1", sip_port))
    return "answered, %d RTP packets in 1 s" % heard
def held_by_zentrale():
    """zentrale's own count of open connections (its /metrics)."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % http_port, timeout=3) as r:
            text = r.read().decode()
    except Exception as e:
        return "metrics failed: %s" % e
    held = [l.split("{", 1)[1].replace('listener="', "").replace('"}', "") for l in text.splitlines()
            if l.startswith("zentrale_connections{")]
    return ", ".join(held)
def healthz():
    t = time.time()
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % http_port, timeout=3) as r:
            return "%d in %.0f ms" % (r.status, (time.time() - t) * 1000)
    except Exception as e:
        return "failed: %s" % e
print("opened: " + ", ".join("%s %d" % (k, len(v)) for k, v in groups.items()))
start = time.time(); tick = 0
while time.time() - start < duration:
    for i, s in enumerate(groups["sip slowloris"]):
        send(s, b"X-Slow-%d: a\r\n" % int(time.time()))
    for k in groups:
        groups[k] = open_ones(groups[k])
    if time.time() - start >= tick:
        print("t=%2.0f s zentrale holds: %s | client sees open: %s | call: %s | /healthz: %s" % (
            time.time() - start, held_by_zentrale(),
            ", ".join("%s %d" % (k, len(v)) for k, v in groups.items()), call(), healthz()),
            flush=True)
        tick += 5
    time.sleep(1)
PY
echo "refusals and closes:"
curl -s "127.0.0.1:$HTTP_PORT/metrics" | grep -E '^zentrale_connections' || true
stop_zentrale
