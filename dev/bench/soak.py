#!/usr/bin/env python3
"""Soak check of polo-exporter: several concurrent scrapers (normal, short scrape timeouts,
clients that hang up at once) for a few minutes against the exporter while the dev ClickHouse
is stopped (after a third of the time) and restarted (after two thirds); the exporter's RSS,
threads and open file descriptors are printed at the start, every 30 s and at the end, with
the answers counted by status. Fails if a source has not recovered after the restart.

Usage (through scripts/bench, which builds the release binary): scripts/bench --soak 300
"""

import argparse
import collections
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "dev", "stack"))
from stack import BACKENDS, backend_argv, free_port, wait_for  # noqa: E402


def wait_http(url, timeout=60):
    wait_for(url, lambda: urllib.request.urlopen(url, timeout=2).read(), timeout)


def process_stats(pid):
    """RSS (MiB), threads and open file descriptors of a process."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return {
        "rss_mib": int(fields["VmRSS"].split()[0]) / 1024,
        "threads": int(fields["Threads"]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


def soak_client(port, kind, stop, counts, lock):
    """One scraper until `stop`: `normal` (10 s scrape timeout), `short` (0.1 s) or `hangup`
    (sends the request and closes at once). Bounded by `stop`; loopback only."""
    while not stop.is_set():
        outcome = "error"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                timeout = {"normal": "10", "short": "0.1", "hangup": "10"}[kind]
                s.sendall(f"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Prometheus-Scrape-Timeout-Seconds: {timeout}\r\n\r\n".encode())
                if kind == "hangup":
                    outcome = "hung up"
                else:
                    data = b""
                    while chunk := s.recv(65536):
                        data += chunk
                    status = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/1.1 ") else "none"
                    complete = data.endswith(b"# EOF\n")
                    outcome = f"{status}{'' if complete or status != '200' else ' incomplete'}"
        except OSError as e:
            outcome = f"error {type(e).__name__}"
        with lock:
            counts[(kind, outcome)] += 1
        if kind == "hangup":
            time.sleep(0.05)


def soak(binary, seconds, scrapers):
    data = tempfile.mkdtemp(prefix="polo-soak-")
    ch_port, port = free_port(), free_port()
    ch_argv = backend_argv("clickhouse", ch_port, ["--seed", "demo", "--data", os.path.join(data, "ch")])

    def start_ch():
        p = subprocess.Popen(ch_argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(f"http://127.0.0.1:{ch_port}{BACKENDS['clickhouse']['ready']}", BACKENDS["clickhouse"]["timeout"])
        return p

    ch = start_ch()
    cfg = os.path.join(data, "soak.yml")
    with open(cfg, "w") as f:
        f.write(f"clickhouse:\n  url: http://127.0.0.1:{ch_port}\n  timeout: 5s\nsources:\n  clickhouse_system:\n    query_log_delay: 2s\n")
    proc = subprocess.Popen([binary, "--config.file", cfg, "--web.listen-address", f"127.0.0.1:{port}", "--log.level", "error"])
    stop, lock, counts = threading.Event(), threading.Lock(), collections.Counter()
    threads = []
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60).read()
        start = process_stats(proc.pid)
        kinds = ["normal", "short", "hangup"]
        for i in range(scrapers):
            t = threading.Thread(target=soak_client, args=(port, kinds[i % 3], stop, counts, lock), daemon=True)
            t.start()
            threads.append(t)
        began = time.time()
        samples = []

        def sample_until(t):
            while time.time() - began < t:
                time.sleep(min(1.0, max(0.0, t - (time.time() - began))))
                if not samples or time.time() - began - samples[-1][0] >= 30:
                    samples.append((time.time() - began, process_stats(proc.pid)))

        sample_until(seconds / 3)
        ch.terminate()
        ch.wait()
        stopped_at = time.time() - began
        sample_until(2 * seconds / 3)
        ch = start_ch()
        restarted_at = time.time() - began
        sample_until(seconds)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        time.sleep(2)
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60).read().decode()
        end = process_stats(proc.pid)
    finally:
        stop.set()
        proc.terminate()
        proc.wait()
        ch.terminate()
        ch.wait()
    ups = dict(re.findall(r'^polo_exporter_source_up\{source="(\w+)"\} (\S+)', body, re.M))
    print(f"soak: {seconds} s, {scrapers} scrapers (normal 10 s, short 0.1 s, hang-up), ClickHouse stopped at {stopped_at:.0f} s and restarted at {restarted_at:.0f} s")
    for (kind, outcome), n in sorted(counts.items()):
        print(f"  {kind:7} {outcome:20} {n}")
    print("  | start | end")
    for key, unit in (("rss_mib", "RSS MiB"), ("threads", "threads"), ("fds", "open fds")):
        fmt = "{:.1f}" if key == "rss_mib" else "{}"
        print(f"  {unit} | {fmt.format(start[key])} | {fmt.format(end[key])}")
    print("  every 30 s (s: RSS MiB / threads / fds): " + ", ".join(f"{t:.0f}: {st['rss_mib']:.1f}/{st['threads']}/{st['fds']}" for t, st in samples))
    print(f"  after the restart: source_up {ups}")
    if any(float(v) != 1.0 for v in ups.values()):
        raise SystemExit("a source did not recover after the restart")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    parser.add_argument("--binary", default=os.path.join(target, "release", "polo-exporter"))
    parser.add_argument("--soak", type=int, default=300, metavar="SECONDS", help="how long the scrapers run")
    parser.add_argument("--scrapers", type=int, default=9, help="concurrent scrapers (a third each normal, short, hang-up)")
    args = parser.parse_args()
    soak(args.binary, args.soak, args.scrapers)


if __name__ == "__main__":
    main()
