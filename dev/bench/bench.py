#!/usr/bin/env python3
"""Scrape cost of polo-exporter on ClickHouse as collector_runs grows.

For each table size: fill polo.collector_runs with 90 days of runs for 8 collectors x 20
accounts x 3 regions (real ClickHouse engine via the dev server), start the exporter, scrape
once (the one-time initial aggregate), then scrape repeatedly (the steady state) and report the
rows ClickHouse read (polo_exporter_clickhouse_read_rows_total deltas), scrape latency and
the exporter's memory (VmRSS / VmHWM).

With --soak SECONDS: several concurrent scrapers (normal, short scrape timeouts, clients that
hang up at once) for that long against the exporter while the dev ClickHouse is stopped (after
a third of the time) and restarted (after two thirds); the exporter's RSS, threads and open
file descriptors are printed at the start and the end, with the answers counted by status.
"""

import argparse
import collections
import os
import re
import socket
import statistics
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
KEYS = 480  # 8 collectors x 20 accounts x 3 regions
DAY_MS = 86_400_000


def sql(port, text):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=text.encode(), method="POST")
    return urllib.request.urlopen(req, timeout=600).read().decode()


def fill(port, rows):
    sql(port, "TRUNCATE TABLE polo.collector_runs")
    runs_per_key = max(1, rows // KEYS)
    step_ms = 90 * DAY_MS // runs_per_key
    now_ms = int(time.time() * 1000)
    sql(port, f"""
        INSERT INTO polo.collector_runs (collector, aws_account_id, aws_region, started_at, completed_at, status, events_produced, rows_inserted, error, duration_ms)
        SELECT concat('collector_', toString(k % 8)),
               toString(100000000000 + intDiv(k, 8) % 20),
               ['us-east-1', 'eu-west-1', 'ap-southeast-2'][intDiv(k, 160) % 3 + 1],
               fromUnixTimestamp64Milli(toInt64({now_ms} - i * {step_ms} - (k * 7919) % {step_ms} - 60000)) AS s,
               s + toIntervalMillisecond(30000 + k),
               if(cityHash64(k, i) % 40 = 0, 'failed', 'succeeded'),
               cityHash64(i) % 1000, cityHash64(k) % 1000,
               if(cityHash64(k, i) % 40 = 0, 'ThrottlingException: Rate exceeded', ''),
               30000 + k
        FROM (SELECT number % {KEYS} AS k, intDiv(number, {KEYS}) AS i FROM numbers({runs_per_key * KEYS}))""")
    sql(port, "OPTIMIZE TABLE polo.collector_runs FINAL")
    return int(sql(port, "SELECT count() FROM polo.collector_runs").strip())


def scrape(port):
    start = time.perf_counter()
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60).read().decode()
    elapsed = time.perf_counter() - start
    m = re.search(r'^polo_exporter_clickhouse_read_rows_total\{source="collector_runs"\} (\S+)', body, re.M)
    system = re.search(r'^polo_exporter_clickhouse_read_rows_total\{source="clickhouse_system"\} (\S+)', body, re.M)
    up = re.search(r'^polo_exporter_source_up\{source="collector_runs"\} (\S+)', body, re.M)
    if not up or float(up.group(1)) != 1.0:
        raise SystemExit("collector_runs source is down:\n" + body[:2000])
    return elapsed, float(m.group(1)), float(system.group(1))


def memory_kib(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def measure(binary, ch_port, rows, scrapes):
    actual = fill(ch_port, rows)
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "bench.yml")
        with open(cfg, "w") as f:
            f.write(f"clickhouse:\n  url: http://127.0.0.1:{ch_port}\n  timeout: 60s\nsources:\n  collector_runs:\n    default_expected_interval: 15m\n  clickhouse_system:\n    query_log_delay: 2s\n")
        proc = subprocess.Popen([binary, "--config.file", cfg, "--web.listen-address", f"127.0.0.1:{port}", "--log.level", "warn"])
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz")
            first_latency, first_rows, last_system = scrape(port)
            latencies, per_scrape, system_per_scrape = [], [], []
            last = first_rows
            for _ in range(scrapes):
                latency, total, system = scrape(port)
                latencies.append(latency)
                per_scrape.append(total - last)
                system_per_scrape.append(system - last_system)
                last, last_system = total, system
            rss, hwm = memory_kib(proc.pid)
        finally:
            proc.terminate()
            proc.wait()
    return {
        "table_rows": actual,
        "initial_read_rows": int(first_rows),
        "initial_latency_ms": first_latency * 1000,
        "steady_read_rows": int(statistics.median(per_scrape)),
        "steady_read_rows_max": int(max(per_scrape)),
        "steady_p50_ms": statistics.median(latencies) * 1000,
        "steady_max_ms": max(latencies) * 1000,
        "system_read_rows": int(statistics.median(system_per_scrape)),
        "rss_mib": rss / 1024,
        "peak_rss_mib": hwm / 1024,
    }


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
    parser.add_argument("--rows", default="250000,1000000,4000000", help="comma-separated table sizes")
    parser.add_argument("--scrapes", type=int, default=20)
    parser.add_argument("--soak", type=int, default=0, metavar="SECONDS", help="run the soak check that long (0: no soak)")
    parser.add_argument("--scrapers", type=int, default=9, help="concurrent scrapers of the soak check")
    args = parser.parse_args()
    if args.soak:
        soak(args.binary, args.soak, args.scrapers)
    if not args.rows:
        return

    ch_port = free_port()
    ch = subprocess.Popen(backend_argv("clickhouse", ch_port, ["--seed", "empty"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{ch_port}{BACKENDS['clickhouse']['ready']}", BACKENDS["clickhouse"]["timeout"])
        results = [measure(args.binary, ch_port, int(r), args.scrapes) for r in args.rows.split(",")]
    finally:
        ch.terminate()
        ch.wait()

    print(f"collector_runs source, {KEYS} keys, 90 days of runs, real ClickHouse engine (chdb); {args.scrapes} steady scrapes per size")
    header = ["table rows", "1st scrape rows read", "1st scrape ms", "rows read/scrape (median, max)", "clickhouse_system rows/scrape", "scrape ms p50", "scrape ms max", "exporter RSS MiB", "peak RSS MiB"]
    print(" | ".join(header))
    for r in results:
        print(" | ".join([
            f"{r['table_rows']:,}", f"{r['initial_read_rows']:,}", f"{r['initial_latency_ms']:.0f}",
            f"{r['steady_read_rows']:,}, {r['steady_read_rows_max']:,}", f"{r['system_read_rows']:,}", f"{r['steady_p50_ms']:.1f}", f"{r['steady_max_ms']:.1f}",
            f"{r['rss_mib']:.1f}", f"{r['peak_rss_mib']:.1f}",
        ]))


if __name__ == "__main__":
    main()
