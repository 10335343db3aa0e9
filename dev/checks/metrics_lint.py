#!/usr/bin/env python3
"""`promtool check metrics` on what the exporter really serves: the dev ClickHouse with the demo
data, the exporter with examples/local.yml, /metrics fetched in the classic text format (the
only one promtool reads) after a few scrapes, so every family has samples."""

import os
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "stack"))
from stack import Stack  # noqa: E402

SCHEMA = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "docs", "status.schema.json")


def main():
    stack = Stack(tempfile.mkdtemp(prefix="polo-lint-"), aws_static=True, clickhouse_static=True)
    try:
        # The dev server flushes its query log every second: count queries 1 s after they end.
        stack.start(monitoring=False, exporter_overrides={"sources.clickhouse_system.query_log_delay": "1s"})
        ch_port, port = stack.ports["clickhouse"], stack.ports["exporter"]
        # Queries that are not the exporter's, so the latency histogram has samples.
        for _ in range(3):
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{ch_port}/", data=b"SELECT count() FROM polo.collector_runs"), timeout=10).read()
        for _ in range(3):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read()
            time.sleep(1)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Accept": "text/plain;version=0.0.4"})
        resp = urllib.request.urlopen(req, timeout=30)
        body = resp.read()
        if not resp.headers["Content-Type"].startswith("text/plain; version=0.0.4"):
            print("unexpected content type " + resp.headers["Content-Type"])
            return 1
        lint = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
        families = sum(1 for line in body.decode().splitlines() if line.startswith("# TYPE "))
        if lint.returncode != 0 or lint.stdout.strip() or lint.stderr.strip():
            print((lint.stdout + lint.stderr).decode())
            return 1
        for needed in (b"polo_clickhouse_query_duration_seconds_bucket", b"polo_sqs_messages_visible{", b"polo_lambda_errors{", b"polo_collector_last_run_status{", b"polo_own_cost_month_to_date_by_service_usd{"):
            if needed not in body:
                print(f"no samples of {needed.decode()}")
                return 1
        # promtool 2.42 does not look for a series given twice; this does, in both formats.
        openmetrics = urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}), timeout=30).read()
        for name, text in (("text", body), ("OpenMetrics", openmetrics)):
            duplicates = duplicate_series(text.decode())
            if duplicates:
                print(f"duplicate series in the {name} format: {duplicates[:5]}")
                return 1
        if duplicate_series('a{x="1"} 1\na{x="1"} 2\n') != ['a{x="1"}']:
            print("the duplicate-series check does not find a duplicate")
            return 1
        print(f"promtool check metrics: {families} families, no problems; no series twice in either format")
        if check_catalog(body.decode()):
            return 1
        return check_status_schema(port)
    finally:
        stack.stop()


def check_catalog(text):
    """Every family the exporter emits is in the generated catalog (docs/reference/metrics.md),
    and the catalog's sections say which sources exist; returns the number of problems."""
    import re

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "docs", "reference", "metrics.md")) as f:
        catalog = set(re.findall(r"^\| `(polo_[a-z0-9_]+)`", f.read(), re.M))
    emitted = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            emitted.add(name + "_total" if kind == "counter" and not name.endswith("_total") else name)
    missing = sorted(emitted - catalog)
    if missing or not catalog:
        print(f"families emitted but not in docs/reference/metrics.md: {missing}")
        return 1
    print(f"catalog: all {len(emitted)} emitted families are in docs/reference/metrics.md ({len(catalog)} listed)")
    return 0


def series_of(line):
    """The series of a sample line: its name and label set as written (up to the closing brace,
    quoted values and their escapes skipped), or its name alone."""
    brace, space = line.find("{"), line.find(" ")
    if brace == -1 or (space != -1 and space < brace):
        return line.split(" ", 1)[0]
    i, quoted = brace + 1, False
    while i < len(line):
        c = line[i]
        if quoted and c == "\\":
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == "}" and not quoted:
            return line[: i + 1]
        i += 1
    return line


def duplicate_series(text):
    """Series given more than once. The exporter writes labels in the order of their
    definition, so equal label sets are equal text."""
    seen, duplicates = set(), []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series = series_of(line)
        if series in seen:
            duplicates.append(series)
        seen.add(series)
    return duplicates


def check_status_schema(port):
    """The status document the exporter serves, validated against docs/status.schema.json."""
    import json

    import jsonschema

    with open(SCHEMA) as f:
        schema = json.load(f)
    doc = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/system/status", timeout=30))
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
    for err in errors:
        print(f"status document: {'/'.join(map(str, err.path)) or '(root)'}: {err.message}")
    sections = sorted(k for k in doc if k != "sources")
    if errors or sections != ["accounts", "clickhouse", "collectors", "cost", "sqs"]:
        print(f"status document does not match docs/status.schema.json (sections {sections})")
        return 1
    print(f"status document: valid against docs/status.schema.json ({len(doc['collectors'])} collectors)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
