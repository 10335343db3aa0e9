#!/usr/bin/env python3
"""End-to-end: the demo stack on free ports (dev ClickHouse, dev AWS, the exporter, Prometheus
with the shipped rules, Alertmanager with the shipped routing, a webhook sink), checked through
Prometheus's and Alertmanager's HTTP APIs, then a ClickHouse outage and its recovery."""

import json
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "stack"))
from stack import ROOT, Stack, wait_for  # noqa: E402

# Families the embedded engine cannot produce: it has no replicated tables (no Keeper) and the
# demo keeps no mutation pending.
NO_DEMO_DATA = {
    "polo_clickhouse_replica_readonly", "polo_clickhouse_replica_absolute_delay_seconds", "polo_clickhouse_replica_queue_size",
    "polo_clickhouse_mutations_pending", "polo_clickhouse_oldest_pending_mutation_timestamp_seconds",
}
# What the demo data makes fire (dev/clickhouse/demo_data.py, dev/aws/demo_data.py).
EXPECTED = {
    "PoloCollectorStale": "critical",  # cost_explorer_sync stopped 5 h ago; config_rds failing for 2 h
    "PoloCollectorFailing": "warning",  # config_rds: 4+ failures in a row
    "PoloAccountNoAccess": "warning",  # 100000000019
    "PoloAccountPendingSetup": "warning",  # 100000000020
    "PoloDeadLetterQueueNotEmpty": "critical",  # polo-events-dlq holds 3 messages
    "PoloLambdaThrottled": "warning",  # polo-cur-ingest throttled twice a minute
    "PoloOwnCostForecastOverBudget": "warning",  # demo costs ~$12.70 a day, budget $300 (examples/local.yml)
    "PoloWatchdog": "none",
}
RECEIVERS = {"critical": {"pager", "chat"}, "warning": {"chat"}, "none": {"heartbeat"}}

results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f"\n     {detail}"), flush=True)


def catalog():
    with open(os.path.join(ROOT, "README.md")) as f:
        return sorted(set(re.findall(r"^\| `(polo_[a-z0-9_]+)`", f.read(), re.M)))


def main():
    workdir = tempfile.mkdtemp(prefix="polo-e2e-")
    stack = Stack(workdir, rule_for="10s", interval="5s", aws_static=True, clickhouse_static=True)
    try:
        stack.start()
        wait_for("exporter target up", lambda: [r for r in stack.query('up{job="polo-exporter"}') if r["value"][1] == "1"], 60)
        check("exporter target is up", True)
        # Queries that are not the exporter's, so the latency histogram has samples (the demo's
        # own inserts at start may fall before the exporter's first query-log window).
        for _ in range(3):
            urllib.request.urlopen(urllib.request.Request(stack.url("clickhouse") + "/", data=b"SELECT count() FROM polo.collector_runs"), timeout=10).read()
        # Enough scrapes for rates and for every source to have run.
        wait_for("source series", lambda: len(stack.query("polo_exporter_source_up == 1")) == 6, 60)
        time.sleep(20)

        missing = [n for n in catalog() if n not in NO_DEMO_DATA and not stack.query(f'count({{__name__=~"{n}(_bucket)?"}})')]
        check("every family of the README catalog has samples in Prometheus", not missing, f"missing: {missing}")

        with open(os.path.join(ROOT, "deploy/grafana/dashboards/polo-system-status.json")) as f:
            dashboard = json.load(f)
        empty = []
        for panel in dashboard["panels"]:
            for t in panel.get("targets", []):
                expr = t["expr"].replace("$__rate_interval", "1m").replace("$instance", ".*").replace("$job", ".*").replace("$collector", "config_ec2")
                if not stack.query(expr):
                    empty.append(f"{panel['title']}: {t['expr']}")
        check("every dashboard query returns data", not empty, "\n     ".join(empty))

        groups = __import__("urllib.request").request.urlopen(stack.url("prometheus") + "/api/v1/rules").read()
        rules = [r for g in json.loads(groups)["data"]["groups"] for r in g["rules"]]
        bad = [r.get("name") for r in rules if r.get("health") != "ok"]
        check(f"all {len(rules)} rules load and evaluate", len(rules) > 20 and not bad, f"unhealthy: {bad}")

        disk_full = any(float(r["value"][1]) > 0.8 for r in stack.query("disk:polo_clickhouse_disk_used:ratio"))
        expected = dict(EXPECTED)
        if disk_full:
            expected["PoloClickHouseDiskAlmostFull"] = "warning"  # this machine's disk really is above 80%

        def firing_names():
            names = {a["labels"]["alertname"] for a in stack.firing()}
            return names if set(expected) <= names else None

        try:
            names = wait_for("expected alerts firing", firing_names, 90)
        except TimeoutError:
            names = {a["labels"]["alertname"] for a in stack.firing()}
        check("exactly the expected alerts fire", names == set(expected), f"expected {sorted(expected)}, firing {sorted(names)}")

        def delivered():
            got = {}
            for n in stack.sink.notifications():
                for alert in n["notification"].get("alerts", []):
                    got.setdefault(alert["labels"]["alertname"], set()).add(n["receiver"])
            return got

        # PoloCollectorFailing is inhibited wherever the same key is stale (critical silences warning).
        deliverable = {name: sev for name, sev in expected.items() if name != "PoloCollectorFailing"}

        def all_delivered():
            got = delivered()
            return got if all(RECEIVERS[sev] <= got.get(name, set()) for name, sev in deliverable.items()) else None

        try:
            got = wait_for("notifications at the sink", all_delivered, 60)
        except TimeoutError:
            got = delivered()
        wrong = {n: sorted(got.get(n, set())) for n, sev in deliverable.items() if got.get(n, set()) != RECEIVERS[sev]}
        check("alerts reach the receivers the routing promises (critical: pager+chat, warning: chat, watchdog: heartbeat)", not wrong, f"{wrong}")
        check("a warning silenced by a critical of the same key is not delivered", "PoloCollectorFailing" not in got, f"{got.get('PoloCollectorFailing')}")

        # ClickHouse outage: source down fires, inhibits the collector alerts; the exporter keeps serving.
        stack.stop_clickhouse()
        wait_for("source down", lambda: [r for r in stack.query('polo_exporter_source_up{source="collector_runs"}') if r["value"][1] == "0"], 30)

        def source_down_and_inhibiting():
            if "PoloExporterSourceDown" not in {a["labels"]["alertname"] for a in stack.firing()}:
                return None
            stale = [a for a in stack.am_alerts() if a["labels"]["alertname"] == "PoloCollectorStale"]
            return stale if stale and all(a["status"]["inhibitedBy"] for a in stale) else None

        try:
            wait_for("PoloExporterSourceDown firing and inhibiting", source_down_and_inhibiting, 60)
            ok = True
        except TimeoutError:
            ok = False
        check("ClickHouse down: PoloExporterSourceDown fires and inhibits the collector alerts", ok)
        still = {a["labels"]["alertname"] for a in stack.firing()}
        check("ClickHouse down: collector alerts neither resolve nor appear falsely",
              {"PoloCollectorStale", "PoloCollectorFailing"} <= still, f"firing: {sorted(still)}")

        stack.start_clickhouse(seed="empty")
        try:
            wait_for("source back up", lambda: [r for r in stack.query('polo_exporter_source_up{source="collector_runs"}') if r["value"][1] == "1"], 60)
            ok = True
        except TimeoutError:
            ok = False
        check("ClickHouse back: the exporter recovers without a restart", ok)
    finally:
        stack.stop()
        if all(results):
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"logs kept in {workdir}")
    print(f"e2e: {sum(results)} passed, {len(results) - sum(results)} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
