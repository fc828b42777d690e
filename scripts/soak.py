#!/usr/bin/env python3
"""Baton's soak test: the release `baton` binary under 30 minutes of mixed
traffic, sampling its resident memory, open files and latency.

    scripts/soak.py [--duration 1800] [--sample 15] [--out soak.json]

What it does, all on 127.0.0.1 (ephemeral ports) and bounded in time:
1. builds `baton` in release mode (unless --binary names one) and serves the
   shipped manifest (host/baton.toml) from a fresh data directory;
2. runs, side by side in threads, each at a fixed pace:
   - reads: job, inventory, cluster, host, task and batch lists, PGO show,
     admin job list (tokens, and HTTP Basic for PGO: a password check each);
   - writes: inventory nodes, clusters and their hosts, put and deleted over a
     bounded set of names (so the data set stays the same size);
   - deploys: orchestrator deploys of 3 nodes, provisioning workflows, PGO
     cluster create + delete (each runs real `sh` processes as jobs);
   - hot swaps: every 30 s a new version of the orchestrator component
     (the same component with a different custom section) through the admin
     API, while the other threads keep calling it;
   - logins: provisioning `POST /auth/login` with the right password, and
     now and then a wrong one (within the limiter's window);
   - bad input: broken JSON, wrong types, a 2 MB body (413), unknown ids,
     forged tokens, unknown routes;
3. every --sample seconds reads VmRSS and the open descriptors of the
   server from /proc, and the p50/p99 latency of each traffic class in that
   window; prints a line and keeps the series;
4. at the end compares the first and the last quarter (after a warm-up):
   resident memory, open files and read latency, and counts 5xx replies,
   unexpected statuses and connection errors (there must be none).

Nothing here runs in the test suite; BENCHMARKS.md records its output.
"""

import argparse
import base64
import http.client
import json
import os
import random
import re
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADMIN_PASSWORD = "soak-admin-password"
USER_PASSWORD = "soak-user-password"


def shipped_manifest():
    text = open(os.path.join(ROOT, "host/baton.toml")).read()
    return text.replace('address = "127.0.0.1:8143"', 'address = "127.0.0.1:0"').replace(
        'address = "127.0.0.1:9090"', 'address = "127.0.0.1:0"'
    )


class Server:
    """`baton serve` with the shipped manifest in a temporary directory."""

    def __init__(self, binary, work):
        self.work = work
        manifest = os.path.join(work, "baton.toml")
        open(manifest, "w").write(shipped_manifest())
        env = dict(os.environ, BATON_ADMIN_PASSWORD=ADMIN_PASSWORD, BATON_LOG="warn")
        self.log = open(os.path.join(work, "server.log"), "w")
        self.proc = subprocess.Popen(
            [binary, "serve", "--manifest", manifest, "--data", os.path.join(work, "data")],
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=env,
            text=True,
        )
        self.urls = []
        while len(self.urls) < 2:
            line = self.proc.stdout.readline()
            if not line:
                sys.exit("baton exited before listening; see " + self.log.name)
            m = re.match(r"listening on (\S+)", line.strip())
            if m:
                self.urls.append(m.group(1))
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        self.ca = os.path.join(work, "data/tls/ca.pem")

    def rss_kib(self):
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def open_files(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def threads(self):
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith("Threads:"):
                return int(line.split()[1])
        return 0

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Client:
    """One keep-alive connection; reconnects when the server closes it."""

    def __init__(self, url, ca):
        scheme, rest = url.split("://", 1)
        self.host, port = rest.rstrip("/").split(":")
        self.port = int(port)
        self.tls = scheme == "https"
        self.ctx = ssl.create_default_context(cafile=ca) if self.tls else None
        self.conn = None

    def _connect(self):
        if self.tls:
            return http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=30)
        return http.client.HTTPConnection(self.host, self.port, timeout=30)

    def request(self, method, path, body=None, headers=None):
        """(status, body bytes); a fresh connection when the old one was closed."""
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = self._connect()
            try:
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.getheader("connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return resp.status, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest, http.client.ResponseNotReady, ssl.SSLEOFError):
                self.conn.close()
                self.conn = None
                # A keep-alive connection the server closed while idle: the
                # request never reached it, so sending it again is safe.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


class Stats:
    """Latencies and outcomes per traffic class, per sampling window."""

    def __init__(self):
        self.lock = threading.Lock()
        self.window = {}
        self.totals = {}
        self.unexpected = []
        self.server_errors = 0
        self.conn_errors = 0

    def record(self, cls, seconds, status, expected, what):
        with self.lock:
            self.window.setdefault(cls, []).append(seconds)
            self.totals[cls] = self.totals.get(cls, 0) + 1
            if status is None:
                self.conn_errors += 1
                self.unexpected.append((cls, what, "connection error"))
            elif status >= 500:
                self.server_errors += 1
            if status is not None and status not in expected:
                self.unexpected.append((cls, what, status))

    def take_window(self):
        with self.lock:
            w, self.window = self.window, {}
        return w


def pct(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


class Soak:
    def __init__(self, server, stats, deadline, component):
        self.server = server
        self.stats = stats
        self.deadline = deadline
        self.component = component
        self.main_url, self.prov_url = server.urls
        admin = Client(self.main_url, server.ca)
        basic = "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
        status, _ = admin.request(
            "PUT", "/admin/v1/users/soak",
            {"password": USER_PASSWORD, "roles": ["admin"]}, {"Authorization": basic})
        assert status in (200, 201), status
        status, body = admin.request(
            "POST", "/admin/v1/tokens", {"user": "soak", "lifetime_secs": 86400},
            {"Authorization": basic})
        assert status == 200, (status, body)
        self.token = json.loads(body)["token"]
        self.auth = {"Authorization": f"Bearer {self.token}"}
        self.basic = "Basic " + base64.b64encode(f"soak:{USER_PASSWORD}".encode()).decode()

    def call(self, client, cls, method, path, body=None, expected=(200,), headers=None):
        start = time.monotonic()
        try:
            status, data = client.request(method, path, body, headers or self.auth)
        except Exception as e:  # noqa: BLE001 - every failure is counted
            self.stats.record(cls, time.monotonic() - start, None, expected, f"{method} {path}: {e}")
            return None, b""
        self.stats.record(cls, time.monotonic() - start, status, expected, f"{method} {path}")
        return status, data

    def paced(self, per_second, step):
        """Runs `step(i)` `per_second` times a second until the deadline."""
        i = 0
        interval = 1.0 / per_second
        next_at = time.monotonic()
        while time.monotonic() < self.deadline:
            step(i)
            i += 1
            next_at += interval
            pause = next_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            else:
                next_at = time.monotonic()

    def pgo_refused(self, client, body):
        status, data = self.call(client, "bad", "POST", "/pgo/clusters", body,
                                 headers={"Authorization": self.basic})
        reply = json.loads(data) if status == 200 else {}
        # CreateClusterResponse tags its Status: {"result", "status": {"Code", "Msg"}}.
        if status == 200 and (reply.get("status") or reply).get("Code") != "error":
            self.stats.record("bad", 0, status, (), "POST /pgo/clusters: garbage accepted")

    def reads(self):
        c = Client(self.main_url, self.server.ca)
        p = Client(self.prov_url, self.server.ca)
        pgo_all = {"ClientVersion": "4.7.4", "Namespace": "pgouser1", "AllFlag": True}
        steps = [
            lambda: self.call(c, "read", "GET", "/orchestrator/v1/jobs?limit=20"),
            lambda: self.call(c, "read", "GET", "/orchestrator/v1/inventory"),
            lambda: self.call(c, "read", "GET", "/api/v0/clusters"),
            lambda: self.call(c, "read", "GET", "/api/v0/hosts"),
            lambda: self.call(p, "read", "GET", "/tasks"),
            lambda: self.call(p, "read", "GET", "/batch/operations"),
            lambda: self.call(c, "read", "GET", "/admin/v1/jobs?limit=20"),
            lambda: self.call(c, "read-basic", "POST", "/pgo/showclusters", pgo_all,
                              headers={"Authorization": self.basic}),
        ]
        self.paced(40, lambda i: steps[i % len(steps)]())

    def writes(self):
        c = Client(self.main_url, self.server.ca)

        def step(i):
            n = i % 200
            if i % 4 == 3:
                self.call(c, "write", "DELETE", f"/orchestrator/v1/inventory/nodes/soak-{n}",
                          expected=(200, 204, 404))
            elif i % 4 == 2:
                self.call(c, "write", "PUT", f"/api/v0/cluster/soak-{n % 20}",
                          {"type": "kubernetes", "network": "default"}, expected=(200, 201))
            else:
                self.call(c, "write", "PUT", f"/orchestrator/v1/inventory/nodes/soak-{n}",
                          {"facts": {"os": "debian", "i": i}}, expected=(200, 201))

        self.paced(10, step)

    def deploys(self):
        c = Client(self.main_url, self.server.ca)
        p = Client(self.prov_url, self.server.ca)
        for n in range(3):
            self.call(c, "deploy", "PUT", f"/orchestrator/v1/inventory/nodes/deploy-{n}", {},
                      expected=(200, 201))

        def step(i):
            kind = i % 4
            if kind == 0:
                self.call(c, "deploy", "POST", "/orchestrator/v1/command/deploy",
                          {"environment": "production",
                           "scope": {"nodes": ["deploy-0", "deploy-1", "deploy-2"]}},
                          expected=(202,))
            elif kind == 1:
                self.call(p, "deploy", "POST", "/workflows/servers/create",
                          {"infra": "soak", "settings": "soak.ncl", "check_mode": True})
            elif kind == 2:
                self.call(c, "deploy", "POST", "/pgo/clusters",
                          {"ClientVersion": "4.7.4", "Namespace": "pgouser1",
                           "Name": f"soak-{i % 10}", "Series": 1})
            else:
                self.call(c, "deploy", "POST", "/pgo/clustersdelete",
                          {"ClientVersion": "4.7.4", "Namespace": "pgouser1",
                           "Clustername": f"soak-{(i - 1) % 10}"})

        self.paced(1, step)

    def swaps(self):
        c = Client(self.main_url, self.server.ca)

        def step(i):
            tag = f"soak-{i}".encode()
            payload = bytes([len(tag)]) + tag
            body = self.component + b"\x00" + bytes([len(payload)]) + payload
            self.call(c, "swap", "PUT", "/admin/v1/handlers/orchestrator", body,
                      headers=dict(self.auth, **{"Content-Type": "application/wasm"}))

        self.paced(1 / 30, step)

    def logins(self):
        p = Client(self.prov_url, self.server.ca)

        def step(i):
            if i % 30 == 29:
                # Below the limiter's 5 per user and 20 per address in 300 s.
                self.call(p, "login", "POST", "/auth/login",
                          {"username": "soak", "password": "wrong-password"},
                          expected=(401,), headers={})
            else:
                self.call(p, "login", "POST", "/auth/login",
                          {"username": "soak", "password": USER_PASSWORD}, headers={})

        self.paced(1, step)

    def bad_input(self):
        c = Client(self.main_url, self.server.ca)
        p = Client(self.prov_url, self.server.ca)
        big = b'{"facts": "' + b"x" * (2 * 1024 * 1024) + b'"}'
        forged = self.token[:-4] + ("AAAA" if not self.token.endswith("AAAA") else "BBBB")
        steps = [
            lambda: self.call(c, "bad", "POST", "/orchestrator/v1/command/deploy", b"{not json",
                              expected=(400,)),
            lambda: self.call(c, "bad", "POST", "/orchestrator/v1/command/deploy",
                              {"environment": 5}, expected=(400,)),
            lambda: self.call(c, "bad", "PUT", "/orchestrator/v1/inventory/nodes/big", big,
                              expected=(413,)),
            lambda: self.call(c, "bad", "GET", "/orchestrator/v1/jobs/999999999", expected=(404,)),
            lambda: self.call(c, "bad", "GET", "/orchestrator/v1/jobs",
                              expected=(401,), headers={"Authorization": f"Bearer {forged}"}),
            lambda: self.call(c, "bad", "GET", "/api/v0/no/such/route", expected=(404,)),
            lambda: self.call(p, "bad", "POST", "/workflows/servers/create", {"infra": 5},
                              expected=(400,)),
            # PGO refuses in the body (`"Code": "error"`) with a 200, as the
            # real apiserver does.
            lambda: self.pgo_refused(c, b"\xff\xfe"),
        ]
        self.paced(5, lambda i: steps[i % len(steps)]())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=1800, help="seconds of traffic")
    ap.add_argument("--sample", type=int, default=15, help="seconds per sample")
    ap.add_argument("--warmup", type=int, default=120, help="seconds left out of the comparison")
    ap.add_argument("--binary", help="a built baton (default: build the release one)")
    ap.add_argument("--out", help="write the samples and the summary as JSON here")
    args = ap.parse_args()

    binary = args.binary
    if not binary:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "baton"], cwd=ROOT, check=True)
        binary = os.path.join(ROOT, "target/release/baton")
    component_path = os.path.join(
        ROOT, "target/wasm-handlers/wasm32-wasip2/release/orchestrator.wasm")
    component = open(component_path, "rb").read()

    work = tempfile.mkdtemp(prefix="baton-soak-")
    server = Server(binary, work)
    stats = Stats()
    deadline = time.monotonic() + args.duration
    soak = Soak(server, stats, deadline, component)
    workers = [soak.reads, soak.writes, soak.deploys, soak.swaps, soak.logins, soak.bad_input]
    threads = [threading.Thread(target=w, daemon=True) for w in workers]
    start = time.monotonic()
    for t in threads:
        t.start()
    samples = []
    print(f"soak: {args.duration} s against {binary} (data in {work})", flush=True)
    print(f"{'t (s)':>6} {'RSS MiB':>8} {'fds':>5} {'thr':>4} {'reqs':>6} "
          f"{'read p50':>9} {'read p99':>9} {'write p99':>9} {'deploy p99':>10} "
          f"{'login p99':>9} {'5xx':>4} {'unexp':>5}", flush=True)
    while time.monotonic() < deadline:
        time.sleep(min(args.sample, max(0.1, deadline - time.monotonic())))
        window = stats.take_window()
        ms = lambda cls, p: (pct(window.get(cls, []), p) or 0) * 1000  # noqa: E731
        s = {
            "t": round(time.monotonic() - start, 1),
            "rss_kib": server.rss_kib(),
            "open_files": server.open_files(),
            "threads": server.threads(),
            "requests": sum(len(v) for v in window.values()),
            "p50_ms": {cls: round(ms(cls, 50), 2) for cls in window},
            "p99_ms": {cls: round(ms(cls, 99), 2) for cls in window},
        }
        samples.append(s)
        print(f"{s['t']:>6.0f} {s['rss_kib'] / 1024:>8.1f} {s['open_files']:>5} {s['threads']:>4} "
              f"{s['requests']:>6} {ms('read', 50):>9.2f} {ms('read', 99):>9.2f} "
              f"{ms('write', 99):>9.2f} {ms('deploy', 99):>10.2f} {ms('login', 99):>9.2f} "
              f"{stats.server_errors:>4} {len(stats.unexpected):>5}", flush=True)
    for t in threads:
        t.join(60)
    rss_end, fds_end = server.rss_kib(), server.open_files()
    server.stop()

    kept = [s for s in samples if s["t"] > args.warmup]
    quarter = max(1, len(kept) // 4)
    first, last = kept[:quarter], kept[-quarter:]

    def med(xs, key):
        return statistics.median([key(x) for x in xs]) if xs else None

    summary = {
        "duration_s": args.duration,
        "requests": stats.totals,
        "server_errors_5xx": stats.server_errors,
        "connection_errors": stats.conn_errors,
        "unexpected": stats.unexpected[:50],
        "unexpected_count": len(stats.unexpected),
        "rss_mib_first_quarter": med(first, lambda s: s["rss_kib"] / 1024),
        "rss_mib_last_quarter": med(last, lambda s: s["rss_kib"] / 1024),
        "rss_mib_end": rss_end / 1024,
        "open_files_first_quarter_max": max((s["open_files"] for s in first), default=None),
        "open_files_last_quarter_max": max((s["open_files"] for s in last), default=None),
        "open_files_end": fds_end,
        "read_p50_ms_first": med(first, lambda s: s["p50_ms"].get("read", 0)),
        "read_p50_ms_last": med(last, lambda s: s["p50_ms"].get("read", 0)),
        "read_p99_ms_first": med(first, lambda s: s["p99_ms"].get("read", 0)),
        "read_p99_ms_last": med(last, lambda s: s["p99_ms"].get("read", 0)),
    }
    print(json.dumps(summary, indent=2))
    if args.out:
        json.dump({"samples": samples, "summary": summary}, open(args.out, "w"), indent=2)
    if stats.server_errors or stats.conn_errors or stats.unexpected:
        sys.exit("soak: the server answered unexpectedly (see `unexpected` above)")


if __name__ == "__main__":
    main()
