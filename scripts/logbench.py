#!/usr/bin/env python3
"""What logging and metrics cost on the request path: the fresh-instance
`GET /health` of the shipped provisioning handler under `wrk`, at the
default log level (`info`: one access-log line per request) next to
`BATON_LOG=warn`, optionally with traces exported over OTLP/HTTP to a
sink the script runs (`--traces`), and optionally next to a baseline
binary (e.g. a build from before the metrics), all servers up at once and
measured in alternating rounds in one run.

    scripts/logbench.py [--baton target/release/baton] [--baseline OTHER_BATON]
                        [--traces] [--together] [--duration 5] [--rounds 7]
                        [--connections 32]

Everything listens on 127.0.0.1 ephemeral ports and each wrk run is bounded
(`--duration` seconds). Each server's stderr goes to a file, as a log
collector's pipe or file would take it (not /dev/null, which costs nothing
to write to). Needs `wrk` (Debian: `apt-get install wrk`).
"""

import argparse
import http.server
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MANIFEST = """
[[listener]]
address = "127.0.0.1:0"

[limits]
max_concurrent = 64

[[handler]]
name = "provisioning"
wasm = "builtin:provisioning"
mount = "/"
errors = "envelope"
[[handler.route]]
path = "/health"
policy = "public"
"""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Sink(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver that counts the spans' bytes and drops them."""
    received = 0

    def do_POST(self):
        n = int(self.headers.get("content-length", 0))
        self.rfile.read(n)
        Sink.received += n
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def start_sink():
    """An OTLP/HTTP sink on an ephemeral loopback port; returns its traces url."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/v1/traces"


def start(binary, level, workdir, name, telemetry=""):
    """Starts `binary serve` with BATON_LOG=`level`; returns (process, base URL, log path)."""
    data = os.path.join(workdir, name)
    os.makedirs(data)
    manifest = os.path.join(data, "baton.toml")
    with open(manifest, "w") as f:
        f.write(telemetry + MANIFEST)
    log_path = os.path.join(data, "stderr.log")
    env = dict(os.environ, BATON_LOG=level, BATON_ADMIN_PASSWORD="bench-password")
    proc = subprocess.Popen(
        [binary, "serve", "--manifest", manifest, "--data", os.path.join(data, "data")],
        stdout=subprocess.PIPE, stderr=open(log_path, "w"), env=env, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"{name} exited before listening; see {log_path}")
        if line.startswith("listening on "):
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return proc, line.split()[2].strip(), log_path
    raise SystemExit(f"{name} did not listen within 120 s")


def wrk_cmd(url, duration, connections):
    return ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "5s", url]


def wrk(url, duration, connections):
    out = subprocess.run(wrk_cmd(url, duration, connections),
                         capture_output=True, text=True, check=True).stdout
    return requests_per_second(url, out)


def cpu_seconds(pid):
    """CPU time (user + system, all threads) the process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk_together(servers, duration, connections):
    """Runs one wrk per server at the same time; returns, per server, its
    requests/s and the server's CPU microseconds per request. Loaded at the
    same moment, the servers see the machine at the same speed, so the
    ratio of their CPU per request does not drift with it."""
    before = [cpu_seconds(proc.pid) for _, proc, _, _ in servers]
    procs = [subprocess.Popen(wrk_cmd(url, duration, connections), stdout=subprocess.PIPE,
                              text=True) for _, _, url, _ in servers]
    outs = [p.communicate()[0] for p in procs]
    after = [cpu_seconds(proc.pid) for _, proc, _, _ in servers]
    rates = [requests_per_second(url, o) for (_, _, url, _), o in zip(servers, outs)]
    return [(rps, (a - b) * 1e6 / (rps * duration)) for rps, a, b in zip(rates, after, before)]


def requests_per_second(url, out):
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{url}: {errors.group(1)} non-2xx responses\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baton", default=os.path.join(ROOT, "target", "release", "baton"))
    ap.add_argument("--baseline", help="another baton binary measured beside it")
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=7, help="alternating runs per server")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--together", action="store_true",
                    help="load the two levels of one binary at the same time, so that they "
                         "share the machine's speed whatever its drift (their ratio is then "
                         "that of their costs per request)")
    ap.add_argument("--traces", action="store_true",
                    help="also serve at info with traces exported to an OTLP/HTTP sink")
    args = ap.parse_args()
    binaries = [("baton", args.baton)] + ([("baseline", args.baseline)] if args.baseline else [])
    with tempfile.TemporaryDirectory(prefix="baton-logbench-") as work:
        servers = []
        for label, binary in binaries:
            for level in ("info", "warn"):
                name = f"{label}-{level}"
                proc, base, log_path = start(binary, level, work, name)
                servers.append((name, proc, base + "/health", log_path))
        if args.traces:
            telemetry = f'[telemetry]\notlp_endpoint = "{start_sink()}"\n'
            proc, base, log_path = start(args.baton, "info", work, "baton-traces", telemetry)
            servers.append(("baton-traces", proc, base + "/health", log_path))
        try:
            for name, _, url, _ in servers:
                wrk(url, 1, args.connections)  # warm-up
            results = {name: [] for name, *_ in servers}
            cpu_per_request = {name: [] for name, *_ in servers}
            for r in range(args.rounds):
                # Rotate who goes first, so that drift in the machine's speed
                # spreads over every server; the two levels of one binary run
                # back to back (which first alternates), so that their paired
                # ratio sees the machine at the same speed.
                pairs = [servers[i:i + 2] for i in range(0, len(servers), 2)]
                pairs = pairs[r % len(pairs):] + pairs[:r % len(pairs)]
                order = [s for pair in pairs for s in (pair if r % 2 == 0 else pair[::-1])]
                if args.together:
                    for pair in pairs:
                        for (name, *_), (rps, cpu) in zip(
                                pair, wrk_together(pair, args.duration, args.connections)):
                            results[name].append(rps)
                            cpu_per_request[name].append(cpu)
                            log(f"round {r + 1}: {name:>14} {rps:>10,.0f} requests/s, "
                                f"{cpu:.1f} µs of CPU each (together)")
                    continue
                for name, _, url, _ in order:
                    rps = wrk(url, args.duration, args.connections)
                    results[name].append(rps)
                    log(f"round {r + 1}: {name:>14} {rps:>10,.0f} requests/s")
            print(f"\nwrk -t1 -c{args.connections} -d{args.duration}s, {args.rounds} rounds, "
                  "GET /health (fresh instance), medians:")
            med = {n: statistics.median(v) for n, v in results.items()}
            for name, runs in results.items():
                print(f"  {name:>14}: {med[name]:>10,.0f}/s   runs: "
                      + ", ".join(f"{x:,.0f}" for x in runs))
            for label, _ in binaries:
                info, warn = results[f"{label}-info"], results[f"{label}-warn"]
                paired = sorted(i / w for i, w in zip(info, warn))
                print(f"  {label}: info / warn = {med[f'{label}-info'] / med[f'{label}-warn']:.3f} "
                      f"(paired per round: min {paired[0]:.3f}, median "
                      f"{statistics.median(paired):.3f}, max {paired[-1]:.3f})")
            if args.together:
                for label, _ in binaries:
                    info, warn = cpu_per_request[f"{label}-info"], cpu_per_request[f"{label}-warn"]
                    paired = sorted(w / i for i, w in zip(info, warn))
                    print(f"  {label}: CPU per request, info {statistics.median(info):.1f} µs, "
                          f"warn {statistics.median(warn):.1f} µs; warn / info paired per round: "
                          f"min {paired[0]:.3f}, median {statistics.median(paired):.3f}, "
                          f"max {paired[-1]:.3f}")
            if args.traces:
                traced, info = results["baton-traces"], results["baton-info"]
                paired = sorted(t / i for t, i in zip(traced, info))
                print(f"  baton: traces / info = {med['baton-traces'] / med['baton-info']:.3f} "
                      f"(paired per round: min {paired[0]:.3f}, median "
                      f"{statistics.median(paired):.3f}, max {paired[-1]:.3f}); "
                      f"{Sink.received:,} bytes of spans received")
            if args.baseline:
                for level in ("info", "warn"):
                    a, b = med[f"baton-{level}"], med[f"baseline-{level}"]
                    print(f"  baton / baseline at {level}: {a / b:.3f}")
            for name, _, _, log_path in servers:
                lines = sum(1 for _ in open(log_path))
                print(f"  {name:>14}: {lines:,} log lines written")
        finally:
            for _, proc, _, _ in servers:
                proc.terminate()
            for _, proc, _, _ in servers:
                proc.wait(timeout=30)


if __name__ == "__main__":
    main()
