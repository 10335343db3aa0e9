#!/usr/bin/env python3
"""Scrape cost of polo-exporter on ClickHouse as collector_runs grows.

For each table size: fill polo.collector_runs with 90 days of runs for 8 collectors x 20
accounts x 3 regions (real ClickHouse engine via the dev server), start the exporter, scrape
once (the one-time initial aggregate), then scrape repeatedly (the steady state) and report the
rows ClickHouse read (polo_exporter_clickhouse_read_rows_total deltas), scrape latency and
the exporter's memory (VmRSS / VmHWM).
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
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


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    parser.add_argument("--binary", default=os.path.join(target, "release", "polo-exporter"))
    parser.add_argument("--rows", default="250000,1000000,4000000", help="comma-separated table sizes")
    parser.add_argument("--scrapes", type=int, default=20)
    args = parser.parse_args()

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
