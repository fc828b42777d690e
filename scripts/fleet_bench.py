#!/usr/bin/env python3
"""Baton at fleet scale: the deploy curve and concurrent kv writes, each next
to a baseline measured in the same run.

    scripts/fleet_bench.py [--sizes 100,1000,10000] [--writers 8] [--seconds 10]
                           [--skip-kv] [--skip-deploy] [--busy-disk]

What it does, all on 127.0.0.1 and bounded in time and count:
1. builds the release `baton`;
2. deploy curve: for each size N, a fresh server (shipped orchestrator
   handler and its stand-in agent command, `BATON_LOG=warn`) gets one
   `POST /orchestrator/v1/command/deploy` naming N nodes, polled once a
   second; the figure is the deploy request's time plus the job's own
   `duration` (created to final). Baseline: N `sh -c true`
   at the same concurrency (the handler's `max_running_jobs`), the floor that
   process spawning sets;
3. kv writes: `--writers` concurrent clients (`hey`) writing
   `PUT /orchestrator/v1/inventory/nodes/{n}` for `--seconds`, with group
   commit (the default) and with `BATON_GROUP_COMMIT=off` (every
   acknowledged write flushed on its own: the code before group commit);
   with `--busy-disk`, the same again while another process shares the disk
   (it writes 1 MiB and fsyncs, in a loop, in the same filesystem), the
   condition in which an fsync costs milliseconds instead of a fraction of
   one.

It needs `hey` (Debian: `apt-get install hey`). Nothing here runs in the test
suite; BENCHMARKS.md records its output.
"""

import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PASSWORD = "fleet-bench-password"
AUTH = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()


def shipped_handler(name):
    """The `[[handler]]` block of `name` in host/baton.toml."""
    text = open(os.path.join(ROOT, "host/baton.toml")).read()
    blocks = text.split("[[handler]]")
    for b in blocks[1:]:
        if f'\nname = "{name}"\n' in b:
            # Up to the next top-level table that is not the handler's own.
            return "[[handler]]" + b
    sys.exit(f"no handler {name} in host/baton.toml")


def manifest():
    return '[[listener]]\naddress = "127.0.0.1:0"\n\n' + shipped_handler("orchestrator")


def max_running_jobs(block):
    m = re.search(r"\[handler\.limits\][^\[]*?max_running_jobs = (\d+)", block, re.S)
    return int(m.group(1)) if m else 8


class Server:
    def __init__(self, baton, env_extra=None):
        self.dir = tempfile.mkdtemp(prefix="baton-fleet-")
        path = os.path.join(self.dir, "baton.toml")
        with open(path, "w") as f:
            f.write(manifest())
        env = dict(os.environ, BATON_LOG="warn", BATON_ADMIN_PASSWORD=PASSWORD)
        env.update(env_extra or {})
        self.proc = subprocess.Popen(
            [baton, "serve", "--manifest", path, "--data", os.path.join(self.dir, "data")],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        line = self.proc.stdout.readline()
        m = re.search(r"listening on (\S+)", line)
        if not m:
            sys.exit(f"baton did not start: {line!r}")
        self.base = m.group(1)
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", AUTH)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.loads(r.read() or b"null")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def timed(call):
    t = time.monotonic()
    call()
    return (time.monotonic() - t) * 1000


def deploy(baton, n):
    """One deploy to n nodes: (seconds, state, node states, reads in flight
    in ms {what: [..]}, resident memory growth in KiB at the peak)."""
    s = Server(baton)
    try:
        nodes = [f"node{i:05d}.example.com" for i in range(n)]
        idle = rss_kib(s.proc.pid)
        reads = {"job": [], "nodes page": [], "events page": []}
        t0 = time.monotonic()
        job = s.call(
            "POST",
            "/orchestrator/v1/command/deploy",
            {"environment": "production", "scope": {"nodes": nodes}},
        )
        accepted = time.monotonic() - t0
        name = job["job"]["name"]
        deadline = t0 + 600
        while time.monotonic() < deadline:
            # Polled once a second, as an operator's client would; the
            # figure is the server's own: the deploy request's time plus
            # the job's `duration` (its start to its last node's end).
            time.sleep(1)
            got = {}
            ms = timed(lambda: got.update(j=s.call("GET", f"/orchestrator/v1/jobs/{name}")))
            j = got["j"]
            if j["state"] in ("finished", "failed", "stopped"):
                took = accepted + float(j["duration"])
                states = j.get("node_states", {})
                peak = rss_kib(s.proc.pid, "VmHWM") - idle
                return took, j["state"], states, reads, peak
            # Reads of the job in flight, each timed on its own.
            reads["job"].append(ms)
            base = f"/orchestrator/v1/jobs/{name}"
            reads["nodes page"].append(
                timed(lambda: s.call("GET", f"{base}/nodes?limit=10&offset={n // 2}"))
            )
            reads["events page"].append(
                timed(lambda: s.call("GET", f"{base}/events?start={n}&limit=10"))
            )
        sys.exit(f"the {n}-node deploy did not end in 600 s")
    finally:
        s.stop()


def spawn_floor(n, concurrency):
    """n `sh -c true` with at most `concurrency` alive at once."""
    t0 = time.monotonic()
    running = []
    started = 0
    while started < n or running:
        while started < n and len(running) < concurrency:
            running.append(subprocess.Popen(["sh", "-c", "true"]))
            started += 1
        running[0].wait()
        running = [p for p in running if p.poll() is None]
    return time.monotonic() - t0


class DiskLoad:
    """Another writer on the same disk: 1 MiB written and fsynced, in a loop,
    in the temp directory (the filesystem the servers' data dirs are on);
    counts its own fsyncs so that the load can be stated."""

    def __init__(self):
        self.path = tempfile.mkstemp(prefix="baton-disk-load-")[1]
        self.stop_flag = threading.Event()
        self.fsyncs, self.fsync_s = 0, 0.0
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        block = os.urandom(1 << 20)
        with open(self.path, "wb") as f:
            while not self.stop_flag.is_set():
                if f.tell() > 256 << 20:
                    f.seek(0)
                f.write(block)
                t = time.monotonic()
                f.flush()
                os.fsync(f.fileno())
                self.fsync_s += time.monotonic() - t
                self.fsyncs += 1

    def stop(self):
        self.stop_flag.set()
        self.thread.join()
        os.unlink(self.path)
        return self.fsyncs, self.fsync_s


NODE = "/orchestrator/v1/inventory/nodes/web-1"
NODE_BODY = '{"facts": {"os": "debian"}}'


def hey_node(base, method, clients, seconds, body=None):
    """`clients` concurrent `hey` clients sending `method` to one inventory
    node for `seconds`: (2xx answers per second, [(status, count)]). Only
    2xx count: hey's Requests/sec counts every answer."""
    cmd = ["hey", "-z", f"{seconds}s", "-c", str(clients), "-m", method,
           "-H", f"Authorization: {AUTH}"]
    if body is not None:
        cmd += ["-T", "application/json", "-d", body]
    out = subprocess.run(cmd + [base + NODE], capture_output=True, text=True, check=True).stdout
    total = float(re.search(r"Total:\s+([\d.]+) secs", out).group(1))
    codes = re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)
    return sum(int(n) for code, n in codes if code.startswith("2")) / total, codes


def kv_writes(baton, writers, seconds, grouped):
    s = Server(baton, None if grouped else {"BATON_GROUP_COMMIT": "off"})
    try:
        return hey_node(s.base, "PUT", writers, seconds, NODE_BODY)
    finally:
        s.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--skip-kv", action="store_true", help="only the deploy curve")
    ap.add_argument("--skip-deploy", action="store_true", help="only the kv writes")
    ap.add_argument("--busy-disk", action="store_true", help="kv writes also on a shared, busy disk")
    a = ap.parse_args()
    if not a.skip_build:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "baton"], cwd=ROOT, check=True)
    baton = os.path.join(ROOT, "target/release/baton")
    conc = max_running_jobs(shipped_handler("orchestrator"))

    if a.skip_deploy:
        a.sizes = ""
    else:
        print(f"## deploy curve (stand-in agent command, concurrency {conc})")
        print(
            "| nodes | deploy | per node | `sh -c true` floor | deploy / floor | state "
            "| reads in flight, median / max ms: job, nodes page, events page "
            "| peak memory growth (per node) |"
        )
        print("|---|---|---|---|---|---|---|---|")
    results = {}
    for n in [int(x) for x in a.sizes.split(",") if x]:
        took, state, states, reads, peak = deploy(baton, n)
        floor = spawn_floor(n, conc)
        results[n] = took
        med = lambda xs: f"{sorted(xs)[len(xs) // 2]:.1f} / {max(xs):.1f}" if xs else "-"
        read_cols = ", ".join(med(reads[k]) for k in ("job", "nodes page", "events page"))
        print(
            f"| {n} | {took:.2f} s | {took / n * 1000:.2f} ms | {floor:.2f} s | "
            f"{took / floor:.2f}× | {state} {json.dumps(states, sort_keys=True)} "
            f"| {read_cols} | {peak / 1024:.1f} MiB ({peak * 1024 / n:.0f} B) |",
            flush=True,
        )
    if 1000 in results and 10000 in results:
        print(f"\nduration(10,000) / duration(1,000) = {results[10000] / results[1000]:.2f}")

    if a.skip_kv:
        return
    if shutil.which("hey") is None:
        sys.exit("kv writes need `hey` (apt-get install hey)")
    disks = [False, True] if a.busy_disk else [False]
    for busy in disks:
        load = DiskLoad() if busy else None
        what = "while another process writes and fsyncs 1 MiB blocks" if busy else "idle disk"
        print(f"\n## kv writes: {a.writers} concurrent clients, {a.seconds} s each, {what}")
        print("| mode | acknowledged writes/s | statuses |")
        print("|---|---|---|")
        rates = {}
        for grouped in (False, True, False, True):
            rate, codes = kv_writes(baton, a.writers, a.seconds, grouped)
            mode = "group commit" if grouped else "one flush per write (BATON_GROUP_COMMIT=off)"
            rates.setdefault(grouped, []).append(rate)
            print(f"| {mode} | {rate:.0f} | {codes} |", flush=True)
        best = lambda xs: sorted(xs)[len(xs) // 2]
        print(f"\ngroup commit / one flush per write = {best(rates[True]) / best(rates[False]):.2f}×")
        if load:
            n, secs = load.stop()
            print(f"(the other writer: {n} fsyncs of 1 MiB, {secs / max(n, 1) * 1000:.1f} ms each on average)")

if __name__ == "__main__":
    main()
