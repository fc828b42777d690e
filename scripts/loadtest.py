#!/usr/bin/env python3
"""Baton's HTTP load test: the real `baton` binary against a native axum
baseline, measured alternately in one run with `wrk`, over loopback.

    scripts/loadtest.py [--duration 5] [--rounds 5] [--connections 32]

What it does, all on 127.0.0.1 and bounded in time:
1. builds `baton` and the `native_baseline` example in release mode;
2. serves a manifest with the shipped handlers twice: once in the default
   fresh-instance mode and once (under other mounts) in the opt-in warm mode;
3. for each endpoint pair, runs `wrk -t1 -cN` against the native server and
   against Baton alternately, `--rounds` times, and prints the medians and
   the ratios;
4. measures p50/p99 latency at half the measured maximum rate (with `hey`,
   which holds a fixed request rate; wrk cannot), and the resident memory of
   both servers holding 1,000 keep-alive connections.

It needs `wrk` and `hey` (Debian: `apt-get install wrk hey`). Nothing here runs in the
test suite; BENCHMARKS.md records its output.
"""

import argparse
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODE = "node1.example.com"

MANIFEST = """
[[listener]]
address = "127.0.0.1:{port}"

[limits]
max_concurrent = 64
max_body_bytes = 1048576

[[handler]]
name = "provisioning"
wasm = "builtin:provisioning"
mount = "/"
errors = "envelope"
[[handler.route]]
path = "/health"
policy = "public"

[[handler]]
name = "provisioning-warm"
wasm = "builtin:provisioning"
mount = "/warm"
errors = "envelope"
[[handler.route]]
path = "/health"
policy = "public"
[handler.warm_instances]
max_requests = 10000

[[handler]]
name = "orchestrator"
wasm = "builtin:orchestrator"
mount = "/orchestrator/v1"
errors = "puppet"
policy = "authenticated"

[[handler]]
name = "orchestrator-warm"
wasm = "builtin:orchestrator"
mount = "/warm-orchestrator/v1"
errors = "puppet"
policy = "authenticated"
[handler.warm_instances]
max_requests = 10000
"""

# (label, native path, baton path, needs a token)
PAIRS = [
    ("trivial: GET /health (fresh instance)", "/health", "/health", False),
    ("kv read: GET /orchestrator/v1/inventory/nodes/{n} (fresh instance)",
     f"/kv/{NODE}", f"/orchestrator/v1/inventory/nodes/{NODE}", True),
    ("trivial: GET /health (warm instances)", "/health", "/warm/health", False),
    ("kv read: inventory node (warm instances)",
     f"/kv/{NODE}", f"/warm-orchestrator/v1/inventory/nodes/{NODE}", True),
]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build():
    log("building baton and native_baseline (release)…")
    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "baton", "--bin", "baton",
         "--example", "native_baseline"],
        cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return (os.path.join(target, "release", "baton"),
            os.path.join(target, "release", "examples", "native_baseline"))


def start(cmd, env=None):
    """Starts a server and waits for its `listening on URL` line."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=env, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"{cmd[0]} exited before listening")
        if line.startswith("listening on "):
            threading.Thread(target=lambda: proc.stdout.read(), daemon=True).start()
            return proc, line.split()[2].strip()
    raise SystemExit(f"{cmd[0]} did not listen within 60 s")


def request(method, url, token=None, body=None):
    req = urllib.request.Request(url, method=method, data=body)
    if token:
        req.add_header("X-Authentication", token)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.read()


def wrk(url, duration, connections, token=None):
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "5s"]
    if token:
        cmd += ["-H", f"X-Authentication: {token}"]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{url}: {errors.group(1)} non-2xx responses\n{out}")
    return rps


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def rss_under_connections(pid, url, token, connections, seconds=4):
    """Peak RSS of `pid` while wrk holds `connections` keep-alive connections."""
    peak = rss_kib(pid)
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s"]
    if token:
        cmd += ["-H", f"X-Authentication: {token}"]
    proc = subprocess.Popen(cmd + [url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while proc.poll() is None:
        peak = max(peak, rss_kib(pid))
        time.sleep(0.1)
    out = proc.stdout.read()
    return peak, out


def paced(url, rate, duration, connections, token=None):
    """`hey` holding `rate` requests/s over `connections` keep-alive
    connections (wrk has no rate limit): (achieved rate, p50 µs, p99 µs)."""
    cmd = ["hey", "-z", f"{duration}s", "-c", str(connections),
           "-q", f"{rate / connections:.1f}", "-t", "5", "-disable-compression"]
    if token:
        cmd += ["-H", f"X-Authentication: {token}"]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    codes = re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)
    if any(code != "200" for code, _ in codes):
        raise SystemExit(f"{url}: non-200 responses under paced load\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    pct = {p: float(v) * 1e6 for p, v in re.findall(r"^\s+(50|99)% in ([\d.]+) secs", out, re.M)}
    return rps, pct.get("50", float("nan")), pct.get("99", float("nan"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=5, help="alternating runs per pair")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--skip-build", action="store_true")
    args = ap.parse_args()
    for tool in ("wrk", "hey"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is not installed (Debian: apt-get install wrk hey)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))

    if args.skip_build:
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
        baton, native = (os.path.join(target, "release", "baton"),
                         os.path.join(target, "release", "examples", "native_baseline"))
    else:
        baton, native = build()

    work = tempfile.mkdtemp(prefix="baton-load-")
    procs = []
    try:
        manifest = os.path.join(work, "baton.toml")
        with open(manifest, "w") as f:
            f.write(MANIFEST.format(port=free_port()))
        data = os.path.join(work, "data")
        env = dict(os.environ, BATON_ADMIN_PASSWORD="load-test-password", BATON_LOG="warn")
        bproc, burl = start([baton, "serve", "--manifest", manifest, "--data", data], env)
        procs.append(bproc)
        nproc, nurl = start([native, f"127.0.0.1:{free_port()}"])
        procs.append(nproc)
        token = subprocess.run([baton, "token", "--manifest", manifest, "--data", data],
                               capture_output=True, text=True, check=True).stdout.strip()
        for mount in ("/orchestrator/v1", "/warm-orchestrator/v1"):
            request("PUT", f"{burl}{mount}/inventory/nodes/{NODE}", token, b"{}")

        log(f"baton {burl} (pid {bproc.pid}), native {nurl} (pid {nproc.pid}); "
            f"{args.rounds} rounds of {args.duration}s, wrk -t1 -c{args.connections}")
        results = {}
        for label, npath, bpath, auth in PAIRS:
            request("GET", burl + bpath, token if auth else None)  # warm up, check 200
            nat, was = [], []
            for r in range(args.rounds):
                # Alternate which goes first so that drift favours neither.
                order = [("native", nurl + npath, None), ("baton", burl + bpath, token if auth else None)]
                if r % 2:
                    order.reverse()
                for who, url, tok in order:
                    rps = wrk(url, args.duration, args.connections, tok)
                    (nat if who == "native" else was).append(rps)
            results[label] = (nat, was)
            n, w = statistics.median(nat), statistics.median(was)
            log(f"  {label}: native {n:,.0f}/s, baton {w:,.0f}/s, ratio {w / n:.2f}")

        print("\n## Throughput (requests/s, medians of alternating runs)\n")
        print("Ratio: of the medians. Paired: each round's baton run over the native run")
        print("next to it (min / median / max), which cancels drift in the machine's speed.\n")
        print("| endpoint | native | baton | ratio | paired | runs (native / baton) |")
        print("|---|---|---|---|---|---|")
        for label, (nat, was) in results.items():
            n, w = statistics.median(nat), statistics.median(was)
            paired = [b / a for a, b in zip(nat, was)]
            spread = f"{min(paired):.2f} / {statistics.median(paired):.2f} / {max(paired):.2f}"
            runs = ", ".join(f"{x:,.0f}" for x in nat) + " / " + ", ".join(f"{x:,.0f}" for x in was)
            print(f"| {label} | {n:,.0f} | {w:,.0f} | {w / n:.2f}x | {spread} | {runs} |")

        print("\n## Latency at half the measured maximum rate (hey, open rate)\n")
        print(f"`hey -c {args.connections} -q RATE/{args.connections}`: each connection sends at a fixed pace.\n")
        print("| endpoint | server | target rate | achieved | p50 | p99 |")
        print("|---|---|---|---|---|---|")
        for label, npath, bpath, auth in PAIRS:
            nat, was = results[label]
            for who, url, tok, peak in (("native", nurl + npath, None, statistics.median(nat)),
                                        ("baton", burl + bpath, token if auth else None, statistics.median(was))):
                rate = peak / 2
                rps, p50, p99 = paced(url, rate, args.duration, args.connections, tok)
                print(f"| {label} | {who} | {rate:,.0f}/s | {rps:,.0f}/s | {p50:.0f} µs | {p99:.0f} µs |")

        print("\n## Resident memory with 1,000 keep-alive connections\n")
        print("| server | idle RSS | peak RSS under 1,000 connections |")
        print("|---|---|---|")
        for who, proc, url, tok in (("native", nproc, nurl + "/health", None),
                                    ("baton (fresh instances)", bproc, burl + "/health", None)):
            idle = rss_kib(proc.pid)
            peak, _ = rss_under_connections(proc.pid, url, tok, 1000)
            print(f"| {who} | {idle / 1024:.1f} MiB | {peak / 1024:.1f} MiB |")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
