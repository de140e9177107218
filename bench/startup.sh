#!/usr/bin/env bash
# Start-up time of the host role: from exec to the client socket accepting a connection, median
# of RUNS starts, for the native release binary and (when built and qemu is there) the aarch64
# one under qemu-user, which measures qemu as much as the relay.
#   bash bench/startup.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-20}
measure() { # label, command prefix...
    local label=$1; shift
    python3 - "$RUNS" "$@" <<'PY'
import os, socket, subprocess, sys, tempfile, time
runs = int(sys.argv[1]); cmd = sys.argv[2:]
times = []
for _ in range(runs):
    d = tempfile.mkdtemp(prefix="dsrst", dir="/tmp")
    sock = os.path.join(d, "h.sock")
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd + ["--role", "host", "--channel", "unix:" + d + "/c.sock",
                                "-s", sock, "-n", "startup", "-l", "10"])
    while True:
        try:
            s = socket.socket(socket.AF_UNIX); s.connect(sock); s.close(); break
        except OSError:
            if time.perf_counter() - t0 > 10: raise SystemExit("never listened")
            time.sleep(0.0002)
    times.append(time.perf_counter() - t0)
    p.terminate(); p.wait()
times.sort()
print(f"median {times[len(times)//2]*1000:.1f} ms, min {times[0]*1000:.1f} ms over {runs} starts")
PY
}
native=target/release/doca_socket_relay
arm=target/aarch64-unknown-linux-gnu/release/doca_socket_relay
[ -x "$native" ] || cargo build --release
echo "x86_64 ($(stat -c %s "$native") bytes): $(measure native "$native")"
if [ -x "$arm" ] && command -v qemu-aarch64 >/dev/null; then
    echo "aarch64 under qemu-user ($(stat -c %s "$arm") bytes): $(measure arm qemu-aarch64 -L /usr/aarch64-linux-gnu "$arm")"
fi
