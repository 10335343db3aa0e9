#!/usr/bin/env python3
"""Issue 20's benchmark: what polo-exporter's collector_runs source costs at Polo's sizes (10k,
100k and 1M collector keys), side by side with query-exporter running the seed's per-collector
SQL on the same table.

Per size (keys = 20 collectors x accounts x 3 regions):
1. create polo.collector_runs from deploy/clickhouse/schema.sql (`--schema recommended`, the
   default) or the seed's bare table (`bare`: the same without the INDEX/PROJECTION lines);
2. fill it with `--history-runs` (2) runs per key: every key runs every `--run-every` (15 min),
   the keys' start times spread evenly over the period, each run lasting 20-60 s, about 1 in 40
   failing with an error text; rows are inserted in completion order, the way collectors write
   at the end of a run, one INSERT per `--fill-batch` seconds of simulated time (hundreds of
   small INSERTs), never OPTIMIZE, until the table has caught up with the wall clock: every
   key's latest run is then 0-15 minutes old;
3. start the exporter (release build) and query-exporter, keep inserting (before each scrape:
   every run that completed since the previous INSERT, in one INSERT) and scrape until the
   exporter's background initial load has finished (`polo_collector_runs_loading 0`);
4. steady phase: `--scrapes` scrapes at a fixed rate (`--interval`, start to start; a scrape
   that overruns is followed by the next at once). Before each: one INSERT of the runs completed
   since the previous one. The floor of a scrape is the number of runs inserted since the
   previous scrape (exact: `count()` of the table before each scrape). Rows read per scrape
   come from the exporter's own `polo_exporter_clickhouse_read_rows_total{source="collector_runs"}`.
   After each exporter scrape, query-exporter is scraped (its query has no interval, so it runs
   the SQL at every scrape). Its rows read per execution come from the engine's own accounting,
   system.query_log (read_rows of each of its executions), and, as a cross-check that needs no
   query log, from the X-ClickHouse-Summary read_rows of the identical statement, which the bench
   runs through the dev ClickHouse right after each query-exporter scrape (with
   --no-query-exporter, only that: the fallback).

The dev ClickHouse runs one query at a time, so every query of the three clients is serialised:
the clients never wait for each other because the bench runs them one after the other.

Prints two markdown tables (polo-exporter, query-exporter) with one row per size, and per size
how long the fill and the whole size took. `--json FILE` also writes every figure.
"""

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "dev", "stack"))
from stack import BACKENDS, backend_argv, free_port, wait_for  # noqa: E402

COLLECTORS = 20
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]
ERRORS = [
    "ThrottlingException: Rate exceeded",
    "AccessDeniedException: User is not authorized to perform: ce:GetCostAndUsage",
    "Task timed out after 900.00 seconds",
]
MIN_RUN_MS, MAX_RUN_MS = 20_000, 60_000

# The seed's per-collector freshness SQL (../shared/seeds, "Freshness monitoring"), without its
# `HAVING minutes_ago > 60` so that every collector is a result row (the issue's "20 result
# rows"; HAVING filters after the aggregation, so the scan is the same).
SEED_SQL = """SELECT
    collector,
    max(completed_at) AS last_run,
    dateDiff('minute', max(completed_at), now()) AS minutes_ago,
    argMax(status, completed_at) AS last_status,
    argMax(error, completed_at) AS last_error
FROM polo.collector_runs
GROUP BY collector
ORDER BY minutes_ago DESC"""

# query-exporter needs its result columns to be exactly its metrics and labels, with numeric
# metric values: the seed SQL as a subquery, its DateTime64 as Unix seconds. The outer SELECT
# only renames and converts 20 rows; the rows read are the seed SQL's.
QE_SQL = ("SELECT collector, toUnixTimestamp(last_run) AS polo_collector_last_run_seconds,\n"
          "       minutes_ago AS polo_collector_minutes_ago, last_status, last_error\n"
          "FROM (\n" + SEED_SQL + "\n)")


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def wait_http(url, timeout=60):
    wait_for(url, lambda: urllib.request.urlopen(url, timeout=2).read(), timeout)


def sql(port, text, summary=False):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=text.encode(), method="POST")
    with urllib.request.urlopen(req, timeout=600) as resp:
        body = resp.read().decode()
        if summary:
            return body, json.loads(resp.headers.get("X-ClickHouse-Summary") or "{}")
        return body


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
    if variant != "bare":
        raise SystemExit(f"unknown schema {variant!r}")
    lines = [line for line in stmt.splitlines() if not re.match(r"\s*(INDEX|PROJECTION) ", line)]
    stmt = "\n".join(lines)
    return re.sub(r",\s*\n\)", "\n)", stmt)


def now_ms():
    return int(time.time() * 1000)


class Runs:
    """Every key runs every `period_ms`: global run number g is key g % keys, started at
    t0 + g * period / keys (the keys' runs spread evenly over the period), lasting 20-60 s.
    `insert_until(t)` inserts, in one INSERT in completion order, every run that completed
    after the previous call's time and at or before t."""

    def __init__(self, port, keys_wanted, period_ms, history_runs, start_ms):
        self.port = port
        self.accounts = max(1, round(keys_wanted / (COLLECTORS * len(REGIONS))))
        self.keys = COLLECTORS * self.accounts * len(REGIONS)
        self.period_ms = period_ms
        self.t0 = start_ms - history_runs * period_ms
        self.done_ms = self.t0  # runs completed at or before this are in the table
        self.inserts = 0

    def _g_at(self, t_ms):
        """First run number started at or after t_ms (never negative)."""
        return max(0, -(-(t_ms - self.t0) * self.keys // self.period_ms))

    def insert_until(self, t_ms):
        if t_ms <= self.done_ms:
            return
        k, a = self.keys, self.accounts
        g0 = self._g_at(self.done_ms - MAX_RUN_MS)
        g1 = self._g_at(t_ms + 1)
        errors = "[" + ", ".join("'" + e.replace("'", "\\'") + "'" for e in ERRORS) + "]"
        sql(self.port, f"""
            INSERT INTO polo.collector_runs (collector, aws_account_id, aws_region, started_at, completed_at, status, events_produced, rows_inserted, error, duration_ms)
            SELECT concat('collector_', toString(k % {COLLECTORS})),
                   toString(100000000000 + intDiv(k, {COLLECTORS}) % {a}),
                   {REGIONS}[intDiv(k, {COLLECTORS * a}) % {len(REGIONS)} + 1],
                   fromUnixTimestamp64Milli(toInt64(s)),
                   fromUnixTimestamp64Milli(toInt64(s + d)),
                   if(h % 40 = 0, 'failed', 'succeeded'),
                   if(h % 40 = 0, 0, 1 + h % 1000), if(h % 40 = 0, 0, 1 + intDiv(h, 1000) % 1000),
                   if(h % 40 = 0, {errors}[intDiv(h, 40) % {len(ERRORS)} + 1], ''),
                   d
            FROM (SELECT number AS g, g % {k} AS k, cityHash64(g) AS h,
                         {self.t0} + intDiv(g * {self.period_ms}, {k}) AS s,
                         {MIN_RUN_MS} + h % {MAX_RUN_MS - MIN_RUN_MS + 1} AS d
                  FROM numbers({g0}, {max(0, g1 - g0)}))
            WHERE s + d > {self.done_ms} AND s + d <= {t_ms}
            ORDER BY s + d""")
        self.done_ms = t_ms
        self.inserts += 1


def count(port):
    return int(sql(port, "SELECT count() FROM polo.collector_runs").strip())


def active_parts(port):
    return int(sql(port, "SELECT count() FROM system.parts WHERE active AND database = 'polo' AND table = 'collector_runs'").strip())


def fill(port, variant, keys, period_ms, history_runs, batch_ms):
    """The history: completion-ordered INSERTs of `batch_ms` of simulated time each, until the
    table has caught up with the wall clock."""
    sql(port, "DROP TABLE IF EXISTS polo.collector_runs")
    sql(port, schema_ddl(variant))
    runs = Runs(port, keys, period_ms, history_runs, now_ms())
    while True:
        wall = now_ms()
        if runs.done_ms >= wall - 1000:
            return runs
        runs.insert_until(min(runs.done_ms + batch_ms, wall))


def metric(body, name, source="collector_runs"):
    label = rf'source="{source}"' if source else ""
    m = re.search(rf'^{name}\{{[^}}]*{label}[^}}]*\}} (\S+)', body, re.M) if source else \
        re.search(rf'^{name}(?:\{{\}})? (\S+)', body, re.M)
    return float(m.group(1)) if m else None


def scrape(port, timeout_header=None):
    headers = {"X-Prometheus-Scrape-Timeout-Seconds": str(timeout_header)} if timeout_header else {}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers)
    start = time.perf_counter()
    body = urllib.request.urlopen(req, timeout=600).read().decode()
    return time.perf_counter() - start, body


def series(body):
    return sum(1 for line in body.splitlines() if line and not line.startswith("#"))


def memory_mib(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def run_exporter(binary, ch_port, d):
    port = free_port()
    cfg = os.path.join(d, "polo-exporter.yml")
    with open(cfg, "w") as f:
        f.write(f"clickhouse:\n  url: http://127.0.0.1:{ch_port}\n  timeout: 60s\nsources:\n  accounts:\n    enabled: false\n"
                "  clickhouse_system:\n    enabled: false\n  collector_runs:\n    default_expected_interval: 15m\n")
    proc = subprocess.Popen([binary, "--config.file", cfg, "--web.listen-address", f"127.0.0.1:{port}", "--log.level", "warn"])
    wait_http(f"http://127.0.0.1:{port}/healthz")
    return proc, port


def run_query_exporter(qe_binary, ch_port, d):
    """query-exporter with the seed SQL as one query without `interval`: it runs at every scrape."""
    port = free_port()
    cfg = os.path.join(d, "query-exporter.yml")
    with open(cfg, "w") as f:
        json.dump({  # JSON is YAML
            "databases": {"polo": {"dsn": f"clickhouse+http://default:@127.0.0.1:{ch_port}/polo"}},
            "metrics": {
                "polo_collector_last_run_seconds": {"type": "gauge", "description": "max(completed_at) per collector",
                                                    "labels": ["collector", "last_status", "last_error"]},
                "polo_collector_minutes_ago": {"type": "gauge", "description": "minutes since max(completed_at)",
                                               "labels": ["collector", "last_status", "last_error"]},
            },
            "queries": {"seed_per_collector": {"databases": ["polo"], "metrics": ["polo_collector_last_run_seconds", "polo_collector_minutes_ago"],
                                               "sql": QE_SQL}},
        }, f, indent=1)
    log_file = open(os.path.join(d, "query-exporter.log"), "w")
    proc = subprocess.Popen([qe_binary, "--config", cfg, "-H", "127.0.0.1", "-p", str(port), "-L", "warning"],
                            stdout=log_file, stderr=subprocess.STDOUT)
    wait_http(f"http://127.0.0.1:{port}/metrics")
    return proc, port, os.path.join(d, "query-exporter.log")


def query_log_reads(ch_port, since_us):
    """read_rows of query-exporter's own executions of the seed SQL since `since_us`, from the dev
    ClickHouse's system.query_log (None where the engine has none)."""
    try:
        sql(ch_port, "SYSTEM FLUSH LOGS")
        out = sql(ch_port, f"""SELECT read_rows FROM system.query_log
            WHERE type = 'QueryFinish' AND event_time_microseconds >= fromUnixTimestamp64Micro({since_us})
              AND query LIKE '%AS polo_collector_minutes_ago%' AND query NOT LIKE '%polo-bench: direct%'
              AND query NOT LIKE '%system.query_log%'
            ORDER BY event_time_microseconds""")
    except OSError as exc:
        log(f"system.query_log not readable ({exc}); rows read come from the identical statement only")
        return None
    return [int(x) for x in out.split()]


def stop(proc):
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def qe_ok(body):
    """query-exporter's own count of successful executions of the query."""
    m = re.search(r'^queries_total\{[^}]*status="success"[^}]*\} (\S+)', body, re.M)
    return float(m.group(1)) if m else 0.0


def measure(args, ch_port, variant, keys):
    t_size = time.perf_counter()
    log(f"[{keys:,} keys] filling ({variant} schema) ...")
    t = time.perf_counter()
    runs = fill(ch_port, variant, keys, args.run_every * 1000, args.history_runs, int(args.fill_batch * 1000))
    fill_s = time.perf_counter() - t
    rows = count(ch_port)
    parts = active_parts(ch_port)
    log(f"[{runs.keys:,} keys] filled {rows:,} runs in {runs.inserts} INSERTs, {fill_s:.1f} s; {parts} active parts")
    r = {"schema": variant, "keys": runs.keys, "rows": rows, "fill_inserts": runs.inserts, "fill_s": fill_s, "parts": parts}
    with tempfile.TemporaryDirectory() as d:
        proc, port = run_exporter(args.binary, ch_port, d)
        qe = None
        try:
            if args.query_exporter:
                qe, qe_port, qe_log = run_query_exporter(args.query_exporter, ch_port, d)
            started = time.perf_counter()
            while True:
                runs.insert_until(now_ms())
                _, body = scrape(port, args.scrape_timeout)
                loading = metric(body, "polo_collector_runs_loading", source=None)
                if loading == 0.0:
                    break
                if time.perf_counter() - started > 1800:
                    raise SystemExit("initial load did not finish within 30 min:\n" + body[:2000])
                time.sleep(1.0)
            r["load_s"] = time.perf_counter() - started
            r["load_rows"] = int(metric(body, "polo_exporter_clickhouse_read_rows_total") or 0)
            log(f"[{runs.keys:,} keys] initial load {r['load_s']:.1f} s, {r['load_rows']:,} rows read")
            qe_successes = 0.0
            if qe:
                # Its first execution (connection set-up) is not measured.
                qe_successes = qe_ok(scrape(qe_port)[1])

            last_read = r["load_rows"]
            last_count = count(ch_port)
            steady_from_us = int(sql(ch_port, "SELECT toUnixTimestamp64Micro(now64(6))").strip())
            lat, reads, floors, down = [], [], [], 0
            qe_lat, qe_series, qe_bytes, qe_reads, direct_lat, qe_failed = [], [], [], [], [], 0
            t_steady = time.perf_counter()
            for i in range(args.scrapes):
                due = t_steady + (i + 1) * args.interval
                time.sleep(max(0.0, due - time.perf_counter()))
                runs.insert_until(now_ms())
                n = count(ch_port)
                floors.append(n - last_count)
                last_count = n
                latency, body = scrape(port, args.scrape_timeout)
                lat.append(latency)
                if metric(body, "polo_exporter_source_up") != 1.0:
                    down += 1
                total = metric(body, "polo_exporter_clickhouse_read_rows_total")
                reads.append(total - last_read)
                last_read = total
                if qe:
                    try:
                        latency, qe_body = scrape(qe_port)
                    except OSError as exc:  # counted, not fatal: the exporter's figures still count
                        log(f"query-exporter scrape failed: {exc}")
                        qe_failed += 1
                    else:
                        qe_lat.append(latency)
                        qe_series.append(series(qe_body))
                        qe_bytes.append(len(qe_body.encode()))
                        if qe_ok(qe_body) <= qe_successes:
                            qe_failed += 1  # the query failed (its error is in query-exporter's log)
                        qe_successes = qe_ok(qe_body)
                # The identical statement through the dev ClickHouse: its read_rows and latency.
                t = time.perf_counter()
                _, summary = sql(ch_port, QE_SQL + "\n/* polo-bench: direct */", summary=True)
                direct_lat.append(time.perf_counter() - t)
                qe_reads.append(int(summary.get("read_rows", 0)))
                log(f"[{runs.keys:,} keys] scrape {i + 1}/{args.scrapes}: floor {floors[-1]:,}, read {reads[-1]:,.0f}, "
                    f"{lat[-1] * 1000:.0f} ms; query-exporter {qe_lat[-1] * 1000 if qe_lat else float('nan'):.0f} ms, "
                    f"seed SQL read {qe_reads[-1]:,}")
            r["series"], r["bytes"] = series(body), len(body.encode())
            if qe:
                r["qe_log_reads"] = query_log_reads(ch_port, steady_from_us)
            r["rss_mib"], r["peak_mib"] = memory_mib(proc.pid)
            if qe:
                r["qe_rss_mib"], r["qe_peak_mib"] = memory_mib(qe.pid)
                with open(qe_log) as f:
                    r["qe_log_tail"] = f.read()[-2000:]
        finally:
            stop(proc)
            if qe:
                stop(qe)
    r["parts_end"] = active_parts(ch_port)
    r.update({
        "steady_scrapes": len(reads), "source_down_scrapes": down,
        "read_median": statistics.median(reads), "read_max": max(reads),
        "floor_median": statistics.median(floors), "floors": floors, "reads": reads,
        "amortised": sum(reads) / max(1, sum(floors)),
        "p50_ms": statistics.median(lat) * 1000, "p99_ms": percentile(lat, 0.99) * 1000,
        "latencies_ms": [x * 1000 for x in lat],
        "seed_read_median": statistics.median(qe_reads), "seed_direct_p50_ms": statistics.median(direct_lat) * 1000,
        "seed_direct_p99_ms": percentile(direct_lat, 0.99) * 1000,
    })
    if args.query_exporter:
        r["qe_failed"] = qe_failed
    if qe_lat:
        r.update({"qe_p50_ms": statistics.median(qe_lat) * 1000, "qe_p99_ms": percentile(qe_lat, 0.99) * 1000,
                  "qe_series": int(statistics.median(qe_series)), "qe_bytes": int(statistics.median(qe_bytes))})
    r["size_s"] = time.perf_counter() - t_size
    return r


POLO_HEADER = ["schema", "keys", "runs in table", "active parts (start / end)", "first load s", "first load rows read",
               "rows read / steady scrape (median, max)", "floor (median)", "× floor (median)", "amortised × floor",
               "scrape ms p50 / p99", "RSS / peak MiB", "series", "bytes"]
QE_HEADER = ["keys", "query-exporter scrape ms p50 / p99", "RSS / peak MiB", "series", "bytes",
             "rows read per execution, median (query_log: executions)", "identical statement: rows read median, ms p50 / p99"]


def polo_row(r):
    ratio = r["read_median"] / r["floor_median"] if r["floor_median"] else float("nan")
    return [r["schema"], f"{r['keys']:,}", f"{r['rows']:,}", f"{r['parts']} / {r['parts_end']}", f"{r['load_s']:.1f}",
            f"{r['load_rows']:,}", f"{r['read_median']:,.0f}, {r['read_max']:,.0f}", f"{r['floor_median']:,.0f}",
            f"{ratio:,.0f}×", f"{r['amortised']:,.0f}×", f"{r['p50_ms']:,.0f} / {r['p99_ms']:,.0f}",
            f"{r['rss_mib']:,.0f} / {r['peak_mib']:,.0f}", f"{r['series']:,}", f"{r['bytes']:,}"]


def qe_row(r):
    direct = f"{r['seed_read_median']:,.0f}, {r['seed_direct_p50_ms']:,.0f} / {r['seed_direct_p99_ms']:,.0f}"
    if "qe_p50_ms" not in r:
        return [f"{r['keys']:,}", "every scrape failed" if r.get("qe_failed") else "not run", "", "", "", "", direct]
    logged = r.get("qe_log_reads")
    own = f"{statistics.median(logged):,.0f} ({len(logged)})" if logged else "no query_log"
    return [f"{r['keys']:,}", f"{r['qe_p50_ms']:,.0f} / {r['qe_p99_ms']:,.0f}", f"{r['qe_rss_mib']:,.0f} / {r['qe_peak_mib']:,.0f}",
            f"{r['qe_series']:,}", f"{r['qe_bytes']:,}", own, direct]


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    parser.add_argument("--binary", default=os.path.join(target, "release", "polo-exporter"))
    parser.add_argument("--keys", default="10000,100000,1000000",
                        help="comma-separated key counts (rounded to 20 collectors x accounts x 3 regions)")
    parser.add_argument("--schema", default="recommended",
                        help="comma-separated: recommended (deploy/clickhouse/schema.sql), bare (the seed's table), "
                             "recommended+projection, recommended+granularity1024")
    parser.add_argument("--history-runs", type=int, default=2, help="runs per key in the table before the exporter starts")
    parser.add_argument("--run-every", type=int, default=900, help="seconds between two runs of a key (15-minute collectors)")
    parser.add_argument("--fill-batch", type=float, default=5.0, help="seconds of simulated time per INSERT of the history")
    parser.add_argument("--scrapes", type=int, default=20, help="steady scrapes after the initial load")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between steady scrapes, start to start (e.g. 1 or 15)")
    parser.add_argument("--scrape-timeout", type=float, default=None,
                        help="send X-Prometheus-Scrape-Timeout-Seconds (Prometheus's default is 10); default: none "
                             "(the exporter then allows a scrape 30 s, so a slow scrape is measured, not cut)")
    qe_default = os.path.join(ROOT, ".venv-bench", "bin", "query-exporter")
    parser.add_argument("--query-exporter", default=qe_default if os.path.exists(qe_default) else None,
                        help="query-exporter executable (scripts/bench installs it into .venv-bench)")
    parser.add_argument("--no-query-exporter", dest="query_exporter", action="store_const", const=None,
                        help="only run the seed SQL directly through the dev ClickHouse")
    parser.add_argument("--json", help="also write every figure to this file")
    args = parser.parse_args()
    # A plain `kill` still stops the exporters and the dev ClickHouse (the `finally` blocks).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    ch_port = free_port()
    with tempfile.TemporaryDirectory(prefix="polo-bench-") as data:
        ch = subprocess.Popen(backend_argv("clickhouse", ch_port, ["--seed", "empty", "--data", data]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        results = []
        try:
            wait_http(f"http://127.0.0.1:{ch_port}{BACKENDS['clickhouse']['ready']}", BACKENDS["clickhouse"]["timeout"])
            engine = sql(ch_port, "SELECT version()").strip()
            for variant in args.schema.split(","):
                for keys in (int(k) for k in args.keys.split(",")):
                    r = measure(args, ch_port, variant, keys)
                    results.append(r)
                    log("| " + " | ".join(polo_row(r)) + " |")
                    log("| " + " | ".join(qe_row(r)) + " |")
                    log(f"[{r['keys']:,} keys] took {r['size_s']:.0f} s (fill {r['fill_s']:.0f} s)")
                    if args.json:
                        with open(args.json, "w") as f:
                            json.dump(results, f, indent=1)
        finally:
            ch.terminate()
            ch.wait()
    print(f"collector_runs: {COLLECTORS} collectors x accounts x {len(REGIONS)} regions, {args.history_runs} runs per key "
          f"of history, every key runs every {args.run_every // 60} min (20-60 s, 1 in 40 failed); {args.scrapes} steady "
          f"scrapes {args.interval:g} s apart; floor = runs inserted since the previous scrape; engine ClickHouse {engine} (chdb) "
          f"behind dev/clickhouse/server.py; binary {args.binary}\n")
    print("polo-exporter\n")
    print(table(POLO_HEADER, [polo_row(r) for r in results]))
    label = "query-exporter (seed SQL at every scrape)" if args.query_exporter else \
        "query-exporter NOT run: the seed SQL run directly through the dev ClickHouse at every scrape"
    print(f"\n{label}; rows read: read_rows of query-exporter's own executions in system.query_log, and the "
          "X-ClickHouse-Summary read_rows of the identical statement run by the bench after each scrape\n")
    print(table(QE_HEADER, [qe_row(r) for r in results]))
    print("\nper size: " + "; ".join(f"{r['keys']:,} keys {r['size_s']:.0f} s (fill {r['fill_s']:.0f} s in {r['fill_inserts']} INSERTs; "
                                     f"source down on {r['source_down_scrapes']} of {r['steady_scrapes']} scrapes"
                                     + (f"; query-exporter failed {r['qe_failed']}" if "qe_failed" in r else "") + ")"
                                     for r in results))


if __name__ == "__main__":
    main()
