#!/usr/bin/env python3
"""Collector health is defined once (the exporter, from its config) and the status document, the
dashboard and the alert rule agree on it, key by key, with a non-default staleness factor.

With `staleness_factor: 3` and an expected interval of 10 min, five collectors have one key
each whose last success is 0.5×, 1.2×, 1.5×, 2.5× and 3.5× the interval old. Expected, from the
definition (healthy up to 1× the interval, late up to 3×, stale beyond): healthy, late, late,
late, stale. Checked against the real exporter on the real ClickHouse engine and a real Prometheus
with the shipped rules:
- the status document's `health` (green / amber / red),
- the dashboard's collector card: its own query (from the dashboard JSON) evaluated by
  Prometheus, mapped through the card's own colour thresholds,
- the stale alert: which collectors have a PoloCollector*Stale alert pending or firing.
"""

import json
import os
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "stack"))
from stack import ROOT, Stack, wait_for  # noqa: E402

INTERVAL_S = 600
FACTOR = 3
# collector → age of its last success in intervals. h12 tells this definition from the first
# version's, whose dashboard turned amber only at half the stale threshold (1.5× here).
AGES = {"h05": 0.5, "h12": 1.2, "h15": 1.5, "h25": 2.5, "h35": 3.5}
EXPECTED = {"h05": "healthy", "h12": "late", "h15": "late", "h25": "late", "h35": "stale"}
STATUS_COLOUR = {"green": "healthy", "amber": "late", "red": "stale"}
DASHBOARD_COLOUR = {"green": "healthy", "orange": "late", "red": "stale"}


def sql(port, text):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=text.encode(), method="POST")
    return urllib.request.urlopen(req, timeout=60).read().decode()


def card(dashboard):
    """The collector card: its health query and its colour steps."""
    panel = next(p for p in dashboard["panels"] if p.get("repeat") == "collector")
    expr = next(t["expr"] for t in panel["targets"] if t["refId"] == "A")
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    return expr, steps


def colour(steps, value):
    chosen = steps[0]["color"]
    for step in steps[1:]:
        if value >= step["value"]:
            chosen = step["color"]
    return chosen


def main():
    stack = Stack(tempfile.mkdtemp(prefix="polo-health-"), rule_for="0s", interval="2s")
    failures = []
    try:
        stack.start_backend("clickhouse", ["--seed", "empty", "--data", os.path.join(stack.workdir, "ch")])
        now = time.time()
        rows = []
        for collector, age in AGES.items():
            done = now - age * INTERVAL_S
            rows.append(f"('{collector}', '111111111111', 'eu-west-1', fromUnixTimestamp64Milli({int((done - 30) * 1000)}), "
                        f"fromUnixTimestamp64Milli({int(done * 1000)}), 'succeeded', 1, 1, '', 30000)")
        sql(stack.ports["clickhouse"], "INSERT INTO polo.collector_runs (collector, aws_account_id, aws_region, started_at, "
            "completed_at, status, events_produced, rows_inserted, error, duration_ms) VALUES " + ", ".join(rows))
        stack.start_exporter({
            "sources.collector_runs.staleness_factor": FACTOR,
            "sources.collector_runs.default_expected_interval": f"{INTERVAL_S}s",
            "sources.collector_runs.expected_intervals": {},
            "sources.collector_runs.dependencies": {},
            "sources.sqs.enabled": False,
            "sources.cloudwatch.enabled": False,
        })
        status = json.load(urllib.request.urlopen(stack.url("exporter") + "/api/v1/system/status", timeout=30))
        by_status = {c["name"]: STATUS_COLOUR[c["health"]] for c in status["collectors"]}

        stack._start_prometheus()
        wait_for("rules evaluated on scraped series",
                 lambda: len(stack.query("collector:polo_collector_success_age_seconds:as_of_read")) == len(AGES), 60)
        time.sleep(6)  # a few evaluations, so `for: 0s` alerts are firing
        with open(os.path.join(ROOT, "deploy/grafana/dashboards/polo-system-status.json")) as f:
            expr, steps = card(json.load(f))
        by_dashboard = {}
        for collector in AGES:
            result = stack.query(expr.replace("$instance", ".*").replace("$job", ".*").replace("$collector", collector))
            by_dashboard[collector] = DASHBOARD_COLOUR[colour(steps, float(result[0]["value"][1]))] if result else "no data"
        stale_alerts = {a["labels"].get("collector") for a in stack.firing()
                        if a["labels"]["alertname"].startswith("PoloCollector") and "Stale" in a["labels"]["alertname"]}
        by_alert = {c: ("stale" if c in stale_alerts else "not stale") for c in AGES}

        for collector, want in EXPECTED.items():
            got = (by_status.get(collector), by_dashboard[collector], by_alert[collector])
            alert_ok = by_alert[collector] == ("stale" if want == "stale" else "not stale")
            ok = got[0] == want and got[1] == want and alert_ok
            print(f"{'ok  ' if ok else 'FAIL'} {collector} at {AGES[collector]}× the interval (factor {FACTOR}): "
                  f"expected {want}; status {got[0]}, dashboard {got[1]}, alert {got[2]}")
            if not ok:
                failures.append(collector)
    finally:
        stack.stop()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
