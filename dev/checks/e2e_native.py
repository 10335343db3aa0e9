#!/usr/bin/env python3
"""End-to-end, native histograms: the real Prometheus (2.42, `--enable-feature=native-histograms`,
so it asks for protobuf first) scrapes the exporter of the demo stack and stores
`polo_clickhouse_query_duration_seconds` as a native histogram; `histogram_quantile` on the native
series and the shipped recording rule (which falls back to it) give the median of known queries.

The figure is computed from the definition, not from the exporter: five `SELECT sleep(0.2)` take
200–210 ms each, and in schema 3 every duration in (2^(-19/8), 2^(-18/8)] = (0.1928 s, 0.2102 s]
falls in one bucket, so the native median lies in that interval. The classic buckets
(0.1, 0.25) would interpolate it to 0.175 s, outside: the check tells the two apart.

Usage: e2e_native.py   (exit 1 on a failed check; logs kept on failure)"""

import os
import shutil
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "stack"))
from stack import Stack, wait_for  # noqa: E402

LOW, HIGH = 2 ** (-19 / 8), 2 ** (-18 / 8)
results = []


def check(name, ok, detail=""):
    results.append(bool(ok))
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f"\n     {detail}"), flush=True)


def main():
    workdir = tempfile.mkdtemp(prefix="polo-e2e-native-")
    stack = Stack(workdir, interval="5s", aws_static=True, clickhouse_static=True,
                  prometheus_args=["--enable-feature=native-histograms"])
    try:
        stack.start()
        wait_for("exporter target up", lambda: [r for r in stack.query('up{job="polo-exporter"}') if r["value"][1] == "1"], 60)
        for _ in range(5):
            req = urllib.request.Request(stack.url("clickhouse") + "/", data=b"SELECT sleep(0.2)")
            urllib.request.urlopen(req, timeout=30).read()

        def native_select():
            return [r for r in stack.query('polo_clickhouse_query_duration_seconds{query_kind="Select"}')
                    if "histogram" in r and float(r["histogram"][1]["count"]) >= 5]
        try:
            wait_for("the queries in the native histogram", native_select, 90)
        except TimeoutError:
            pass
        series = native_select()
        check("Prometheus stores polo_clickhouse_query_duration_seconds as a native histogram (scraped as protobuf)",
              series, f"{stack.query('polo_clickhouse_query_duration_seconds')}")
        check("no classic _bucket series beside it (2.42 keeps the native one)",
              not stack.query("polo_clickhouse_query_duration_seconds_bucket"))
        expr = 'histogram_quantile(0.5, sum by (replica) (rate(polo_clickhouse_query_duration_seconds{query_kind="Select"}[1m])))'
        median = [float(r["value"][1]) for r in stack.query(expr)]
        print(f"     {expr} = {median}", flush=True)
        check(f"native median of 5 × sleep(0.2) in ({LOW:.4f}, {HIGH:.4f}] s", len(median) == 1 and LOW < median[0] <= HIGH,
              f"{expr} = {median}")

        def recorded():
            return [float(r["value"][1]) for r in stack.query("replica:polo_clickhouse_query_duration_seconds:p50_rate5m")]
        try:
            wait_for("the recording rule", recorded, 60)
        except TimeoutError:
            pass
        p50 = recorded()
        print(f"     replica:polo_clickhouse_query_duration_seconds:p50_rate5m = {p50}", flush=True)
        check("the shipped p50 recording rule reads the native series", len(p50) == 1 and LOW < p50[0] <= HIGH, f"{p50}")
    finally:
        stack.stop()
        if all(results):
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"logs kept in {workdir}")
    print(f"e2e_native: {sum(results)} passed, {len(results) - sum(results)} failed")
    return 0 if results and all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
