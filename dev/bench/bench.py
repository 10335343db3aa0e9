#!/usr/bin/env python3
"""What polo-exporter's collector_runs source costs ClickHouse on a live-shaped table.

For each (schema, rows, keys): create polo.collector_runs from deploy/clickhouse/schema.sql (or the
seed's bare table: the same without its INDEX/PROJECTION lines), fill it with 90 days of runs
the way collectors write them (time-ordered INSERTs, many batches, the last two hours one
minute per batch; never OPTIMIZE, so the table has the parts a live one has), start the
exporter, wait for its background initial load, then scrape repeatedly while new runs keep
arriving (one small INSERT before each scrape). It prints per case: parts, rows read per steady
scrape next to the rows actually in the late-arrival window (the physical floor), initial-load
time and rows read, series per scrape (default config and every key), response bytes, scrape
latency p50/p99 and the exporter's RSS.

Keys are collectors x accounts x regions (20 collectors, 3 regions); runs of all keys are spread
evenly, so one key runs every keys x (90 days / rows).
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

DAY_MS = 86_400_000
SPAN_MS = 90 * DAY_MS
COLLECTORS = 20
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]
WINDOW_MS = 20 * 60_000  # the default late_arrival_window
TAIL_MS = 2 * 3_600_000  # the last two hours arrive one minute per INSERT
HISTORY_BATCHES = 400


def wait_http(url, timeout=60):
    wait_for(url, lambda: urllib.request.urlopen(url, timeout=2).read(), timeout)


def sql(port, text):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=text.encode(), method="POST")
    return urllib.request.urlopen(req, timeout=600).read().decode()


def schema_ddl(variant):
    """The collector_runs CREATE statement: as shipped (`recommended`) or the seed's bare table."""
    text = open(os.path.join(ROOT, "deploy", "clickhouse", "schema.sql")).read()
    text = "\n".join(re.sub(r"--.*$", "", line) for line in text.splitlines())
    stmt = next(s for s in text.split(";") if "CREATE TABLE IF NOT EXISTS polo.collector_runs" in s)
    if variant == "recommended":
        return stmt
    if variant == "recommended+granularity1024":
        # Explored: 1,024-row granules (new tables only: index_granularity cannot be altered).
        return stmt + "\nSETTINGS index_granularity = 1024"
    if variant == "recommended+projection":
        # Explored, not shipped: a copy of the rows sorted by started_at (doubles the table).
        return re.sub(r"\n\)", ",\n    PROJECTION by_started_at (SELECT * ORDER BY started_at)\n)", stmt, count=1)
    lines = [line for line in stmt.splitlines() if not re.match(r"\s*(INDEX|PROJECTION) ", line)]
    stmt = "\n".join(lines)
    return re.sub(r",\s*\n\)", "\n)", stmt)


class Table:
    """Runs of `keys` keys, evenly spread: global run number g starts at t0 + g * gap."""

    def __init__(self, port, rows, keys, now_ms):
        self.port, self.keys = port, keys
        self.gap_ms = SPAN_MS / rows
        self.t0 = now_ms - SPAN_MS
        self.next_g = 0

    def insert_until(self, t_ms):
        g1 = int((t_ms - self.t0) / self.gap_ms)
        if g1 <= self.next_g:
            return 0
        g0, k = self.next_g, self.keys
        accounts = max(1, k // (COLLECTORS * len(REGIONS)))
        sql(self.port, f"""
            INSERT INTO polo.collector_runs (collector, aws_account_id, aws_region, started_at, completed_at, status, events_produced, rows_inserted, error, duration_ms)
            SELECT concat('collector_', toString(k % {COLLECTORS})),
                   toString(100000000000 + intDiv(k, {COLLECTORS}) % {accounts}),
                   {REGIONS}[intDiv(k, {COLLECTORS * accounts}) % {len(REGIONS)} + 1],
                   fromUnixTimestamp64Milli(toInt64({self.t0} + g * {self.gap_ms})) AS s,
                   s + toIntervalMillisecond(20000 + k % 40000),
                   if(cityHash64(g) % 40 = 0, 'failed', 'succeeded'),
                   cityHash64(g) % 1000, cityHash64(k) % 1000,
                   if(cityHash64(g) % 40 = 0, 'ThrottlingException: Rate exceeded', ''),
                   20000 + k % 40000
            FROM (SELECT number AS g, number % {k} AS k FROM numbers({g0}, {g1 - g0}))""")
        self.next_g = g1
        return g1 - g0


def fill(port, variant, rows, keys):
    sql(port, "DROP TABLE IF EXISTS polo.collector_runs")
    sql(port, schema_ddl(variant))
    now = int(time.time() * 1000)
    table = Table(port, rows, keys, now)
    history_end = now - TAIL_MS
    for b in range(1, HISTORY_BATCHES + 1):
        table.insert_until(table.t0 + (history_end - table.t0) * b / HISTORY_BATCHES)
    t = history_end
    while t < now:
        t += 60_000
        table.insert_until(min(t, now))
    return table


def metric(body, name, source="collector_runs"):
    m = re.search(rf'^{name}\{{source="{source}"\}} (\S+)', body, re.M)
    return float(m.group(1)) if m else None


def scrape(port):
    start = time.perf_counter()
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=120).read().decode()
    return time.perf_counter() - start, body


def series(body):
    return sum(1 for line in body.splitlines() if line and not line.startswith("#"))


def memory_kib(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def run_exporter(binary, ch_port, max_keys, d):
    port = free_port()
    cfg = os.path.join(d, f"bench-{port}.yml")
    extra = f"    per_key_series_max_keys: {max_keys}\n" if max_keys is not None else ""
    with open(cfg, "w") as f:
        f.write(f"clickhouse:\n  url: http://127.0.0.1:{ch_port}\n  timeout: 60s\nsources:\n  accounts:\n    enabled: false\n  clickhouse_system:\n    enabled: false\n  collector_runs:\n    default_expected_interval: 1d\n{extra}")
    proc = subprocess.Popen([binary, "--config.file", cfg, "--web.listen-address", f"127.0.0.1:{port}", "--log.level", "warn"])
    wait_http(f"http://127.0.0.1:{port}/healthz")
    return proc, port


def wait_loaded(port, started):
    while True:
        _, body = scrape(port)
        loading = re.search(r"^polo_collector_runs_loading (\S+)", body, re.M)
        if loading and float(loading.group(1)) == 0.0:
            return time.perf_counter() - started, body
        if time.perf_counter() - started > 1800:
            raise SystemExit("initial load did not finish within 30 min:\n" + body[:2000])
        time.sleep(0.2)


def measure(binary, ch_port, variant, rows, keys, scrapes, interval):
    table = fill(ch_port, variant, rows, keys)
    actual = int(sql(ch_port, "SELECT count() FROM polo.collector_runs").strip())
    parts = int(sql(ch_port, "SELECT count() FROM system.parts WHERE active AND database = 'polo' AND table = 'collector_runs'").strip())
    with tempfile.TemporaryDirectory() as d:
        proc, port = run_exporter(binary, ch_port, None, d)
        try:
            started = time.perf_counter()
            load_s, body = wait_loaded(port, started)
            load_rows = metric(body, "polo_exporter_clickhouse_read_rows_total")
            latencies, per_scrape, floors = [], [], []
            last = load_rows
            for _ in range(scrapes):
                time.sleep(interval)
                now = int(time.time() * 1000)
                table.insert_until(now - 30_000)
                floors.append(int(sql(ch_port, f"SELECT count() FROM polo.collector_runs WHERE started_at >= fromUnixTimestamp64Milli({now - WINDOW_MS})").strip()))
                latency, body = scrape(port)
                if metric(body, "polo_exporter_source_up") != 1.0:
                    raise SystemExit("collector_runs source is down:\n" + body[:3000])
                total = metric(body, "polo_exporter_clickhouse_read_rows_total")
                latencies.append(latency)
                per_scrape.append(total - last)
                last = total
            default_series, default_bytes = series(body), len(body.encode())
            rss, hwm = memory_kib(proc.pid)
        finally:
            proc.terminate()
            proc.wait()
        # Every key's series (per_key_series_max_keys raised): the size before the bound.
        proc, port = run_exporter(binary, ch_port, 10_000_000, d)
        try:
            wait_loaded(port, time.perf_counter())
            full_latency, full = scrape(port)
            _, full = scrape(port)
            full_rss, full_hwm = memory_kib(proc.pid)
        finally:
            proc.terminate()
            proc.wait()
    latencies.sort()
    return {
        "schema": variant, "rows": actual, "keys": keys, "parts": parts,
        "floor": int(statistics.median(floors)),
        "steady": int(statistics.median(per_scrape)), "steady_max": int(max(per_scrape)),
        "load_s": load_s, "load_rows": int(load_rows),
        "series": default_series, "bytes": default_bytes,
        "full_series": series(full), "full_bytes": len(full.encode()),
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "rss_mib": rss / 1024, "peak_mib": hwm / 1024, "full_rss_mib": full_rss / 1024,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    parser.add_argument("--binary", default=os.path.join(target, "release", "polo-exporter"))
    parser.add_argument("--rows", default="1000000,10000000", help="comma-separated table sizes")
    parser.add_argument("--keys", default="3000,30000", help="comma-separated key counts")
    parser.add_argument("--schema", default="bare,recommended", help="bare (the seed's table), recommended (deploy/clickhouse/schema.sql), recommended+projection, recommended+granularity1024")
    parser.add_argument("--scrapes", type=int, default=20)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between steady scrapes")
    args = parser.parse_args()

    ch_port = free_port()
    ch = subprocess.Popen(backend_argv("clickhouse", ch_port, ["--seed", "empty"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    header = ["schema", "rows", "keys", "parts", "window rows (floor)", "rows read/scrape (median, max)", "× floor",
              "initial load s", "initial load rows read", "series (default)", "bytes (default)",
              "series (every key)", "bytes (every key)", "scrape ms p50", "p99", "RSS MiB (default)", "RSS MiB (every key)"]
    print(f"collector_runs, 90 days of runs, {COLLECTORS} collectors x accounts x {len(REGIONS)} regions, window {WINDOW_MS // 60000} min, {args.scrapes} scrapes {args.interval}s apart; real ClickHouse engine (chdb)", flush=True)
    print("| " + " | ".join(header) + " |", flush=True)
    print("|" + "---|" * len(header), flush=True)
    try:
        wait_http(f"http://127.0.0.1:{ch_port}{BACKENDS['clickhouse']['ready']}", BACKENDS["clickhouse"]["timeout"])
        for variant in args.schema.split(","):
            for keys in (int(k) for k in args.keys.split(",")):
                for rows in (int(r) for r in args.rows.split(",")):
                    r = measure(args.binary, ch_port, variant, rows, keys, args.scrapes, args.interval)
                    print("| " + " | ".join([
                        r["schema"], f"{r['rows']:,}", f"{r['keys']:,}", str(r["parts"]), f"{r['floor']:,}",
                        f"{r['steady']:,}, {r['steady_max']:,}", f"{r['steady'] / max(1, r['floor']):.1f}",
                        f"{r['load_s']:.2f}", f"{r['load_rows']:,}", f"{r['series']:,}", f"{r['bytes']:,}",
                        f"{r['full_series']:,}", f"{r['full_bytes']:,}", f"{r['p50_ms']:.0f}", f"{r['p99_ms']:.0f}",
                        f"{r['rss_mib']:.1f}", f"{r['full_rss_mib']:.1f}",
                    ]) + " |", flush=True)
    finally:
        ch.terminate()
        ch.wait()


if __name__ == "__main__":
    main()
