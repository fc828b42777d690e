#!/usr/bin/env python3
"""Baton on PostgreSQL next to Baton on sled, measured in the same run.

    scripts/storage_bench.py [--rounds 3] [--writers 8] [--seconds 8]
                             [--nodes 2000] [--skip-build]

What it does, all on 127.0.0.1 and bounded in time and count:
1. builds the release `baton` (unless --skip-build);
2. starts a private PostgreSQL server (the machine's installed one: initdb
   into a temporary directory, as the `postgres` user when run as root, a
   free port, fsync and synchronous commit on, as in production);
3. for each round, for sled and then for PostgreSQL (a fresh database each
   time, through `BATON_STORAGE_URL`), a fresh server (the shipped
   orchestrator handler, `BATON_LOG=warn`):
   - kv writes: `--writers` clients (`hey`) `PUT` one inventory node for
     `--seconds`; acknowledged (2xx) writes per second;
   - kv reads: the same clients `GET` it; 2xx reads per second;
   - a deploy to `--nodes` nodes (the shipped stand-in agent): seconds from
     the request to the job's end, and nodes per second (each node is one
     job running one trivial command, so this is also jobs per second);
4. then the same on two replicas of one fresh database (two servers, each
   with its own data directory): the clients split between them (half on
   each, run at once), and the nodes as two deploys of half, one through
   each replica, started together, timed until both end. (One deploy is
   one graph, which one replica runs; two deploys spread the work.)
Medians over the rounds, and PostgreSQL / sled ratios.

It needs `hey` (Debian: `apt-get install hey`) and PostgreSQL's server
(Debian: `apt-get install postgresql`). Nothing here runs in the test suite;
BENCHMARKS.md records its output.
"""

import argparse
import glob
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fleet_bench  # noqa: E402  (Server, hey_node, ROOT)


class Postgres:
    """A private PostgreSQL server, stopped and removed by `stop`."""

    def __init__(self):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins:
            sys.exit("PostgreSQL's server is not installed: apt-get install -y postgresql")
        self.bin = os.path.dirname(bins[-1])
        self.user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.dir = tempfile.mkdtemp(prefix="baton-bench-pg-")
        if self.user:
            subprocess.run(["chown", "postgres", self.dir], check=True)
        data = os.path.join(self.dir, "data")
        subprocess.run(
            self.user + [f"{self.bin}/initdb", "-U", "postgres", "-A", "trust",
                         "-E", "UTF8", "--locale=C", "-D", data],
            check=True, capture_output=True,
        )
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            self.user + [f"{self.bin}/postgres", "-D", data, "-p", str(self.port),
                         "-k", self.dir, "-c", "listen_addresses=127.0.0.1",
                         "-c", "max_connections=200"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for _ in range(300):
            ok = subprocess.run(
                [f"{self.bin}/pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port)]
            ).returncode == 0
            if ok:
                break
            time.sleep(0.1)
        else:
            sys.exit("the PostgreSQL server did not start")
        self.dbs = 0

    def database(self):
        self.dbs += 1
        name = f"bench{self.dbs}"
        subprocess.run(
            [f"{self.bin}/createdb", "-h", "127.0.0.1", "-p", str(self.port),
             "-U", "postgres", name],
            check=True,
        )
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)
        subprocess.run(self.user + ["rm", "-rf", self.dir])


def deploy_seconds(server, n, prefix=""):
    nodes = [f"{prefix}node{i:05d}.example.com" for i in range(n)]
    t0 = time.monotonic()
    job = server.call(
        "POST", "/orchestrator/v1/command/deploy",
        {"environment": "production", "scope": {"nodes": nodes}},
    )
    name = job["job"]["name"]
    while time.monotonic() < t0 + 900:
        time.sleep(0.5)
        j = server.call("GET", f"/orchestrator/v1/jobs/{name}")
        if j["state"] in ("finished", "failed", "stopped"):
            assert j["state"] == "finished", j
            return time.monotonic() - t0
    sys.exit(f"the {n}-node deploy did not end in 900 s")


def two(baton, url, args):
    """The measures of `one` on two replicas of the database at `url`."""
    env = {"BATON_STORAGE_URL": url}
    a = fleet_bench.Server(baton, env)
    b = fleet_bench.Server(baton, env)
    try:
        def split(method, body=None):
            out = [None, None]
            def run(i, server):
                out[i], _ = fleet_bench.hey_node(
                    server.base, method, max(1, args.writers // 2), args.seconds, body)
            threads = [threading.Thread(target=run, args=(i, s)) for i, s in enumerate((a, b))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return sum(out)
        writes = split("PUT", fleet_bench.NODE_BODY)
        reads = split("GET")
        took = [None, None]
        def dep(i, server):
            took[i] = deploy_seconds(server, args.nodes // 2, prefix=f"r{i}-")
        threads = [threading.Thread(target=dep, args=(i, s)) for i, s in enumerate((a, b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return writes, reads, max(took)
    finally:
        a.stop()
        b.stop()


def one(baton, env, args):
    s = fleet_bench.Server(baton, env)
    try:
        writes, _ = fleet_bench.hey_node(
            s.base, "PUT", args.writers, args.seconds, fleet_bench.NODE_BODY
        )
        reads, _ = fleet_bench.hey_node(s.base, "GET", args.writers, args.seconds)
        took = deploy_seconds(s, args.nodes)
        return writes, reads, took
    finally:
        s.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--nodes", type=int, default=2000)
    ap.add_argument("--skip-build", action="store_true")
    args = ap.parse_args()
    if shutil.which("hey") is None:
        sys.exit("hey is not installed: apt-get install -y hey")
    if not args.skip_build:
        subprocess.run(["cargo", "build", "--release", "-p", "baton"], cwd=fleet_bench.ROOT, check=True)
    baton = os.path.join(fleet_bench.ROOT, "target/release/baton")
    pg = Postgres()
    backends = ("sled", "postgres", "pg×2")
    results = {b: [] for b in backends}
    try:
        for r in range(args.rounds):
            for backend in backends:
                if backend == "sled":
                    w, rd, d = one(baton, {}, args)
                elif backend == "postgres":
                    w, rd, d = one(baton, {"BATON_STORAGE_URL": pg.database()}, args)
                else:
                    w, rd, d = two(baton, pg.database(), args)
                results[backend].append((w, rd, d))
                print(f"round {r + 1} {backend:8}: {w:8.0f} writes/s {rd:8.0f} reads/s "
                      f"{args.nodes} nodes in {d:6.2f} s ({args.nodes / d:6.0f} nodes/s)",
                      flush=True)
    finally:
        pg.stop()
    med = {b: [statistics.median(x[i] for x in v) for i in range(3)] for b, v in results.items()}
    print(f"\n{'median':9} {'writes/s':>10} {'reads/s':>10} {'deploy s':>10} {'nodes/s':>10}")
    for b in backends:
        w, rd, d = med[b]
        print(f"{b:9} {w:10.0f} {rd:10.0f} {d:10.2f} {args.nodes / d:10.0f}")
    s = med["sled"]
    for b in ("postgres", "pg×2"):
        p = med[b]
        print(f"{b + '/sled':9} {p[0] / s[0]:10.2f} {p[1] / s[1]:10.2f} {p[2] / s[2]:10.2f} {s[2] / p[2]:10.2f}")


if __name__ == "__main__":
    main()
