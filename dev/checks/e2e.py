#!/usr/bin/env python3
"""End-to-end: the demo stack on free ports (dev ClickHouse, dev AWS, the exporter, Prometheus
with the shipped rules, Alertmanager with the shipped routing, a webhook sink), checked through
Prometheus's and Alertmanager's HTTP APIs, then a ClickHouse outage and its recovery.

The notification budget is counted from the receivers' side (the sink): the demo data hold four
incidents (cost_explorer_sync stopped, config_rds failing, a non-empty dead-letter queue,
config_network succeeding with zero events for the last hour), so the
pager gets at most one notification group per incident; the no_access account's keys never
page; chat stays within a few messages. The shipped time intervals are replaced in the overlay
by "always business hours, never maintenance" so that the count does not depend on the clock
(dev/checks/inhibitions.py tests the intervals themselves).

Then the lifecycle cases while the incidents page (see `lifecycle`): the exporter unreachable for
two scrape intervals, the exporter restarted, Prometheus restarted with the production `for:` of
the paging rules; the receivers must get no "resolved" and no second page."""

import json
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "stack"))
from stack import ROOT, Stack, get_json, wait_for  # noqa: E402

import yaml  # noqa: E402

# Families the embedded engine cannot produce: it has no replicated tables (no Keeper) and the
# demo keeps no mutation pending.
NO_DEMO_DATA = {
    "polo_clickhouse_replica_readonly", "polo_clickhouse_replica_absolute_delay_seconds", "polo_clickhouse_replica_queue_size",
    "polo_clickhouse_mutations_pending", "polo_clickhouse_oldest_pending_mutation_timestamp_seconds",
    # Cluster mode only (clickhouse.cluster); the demo stack is one node. tests/clickhouse_system.rs
    # covers them against the dev ClickHouse's --cluster with a dead replica.
    "polo_clickhouse_cluster_replicas", "polo_clickhouse_cluster_replica_up",
    # Keeper sessions of replicated tables, parts the server detached, Distributed tables' queues:
    # none in the demo. tests/clickhouse_health.rs makes detached parts and a Distributed queue
    # on the real engine; replicas' session expiry is covered by unit tests from fixtures.
    "polo_clickhouse_replica_session_expired", "polo_clickhouse_detached_parts",
    "polo_clickhouse_distribution_queue_files", "polo_clickhouse_distribution_queue_broken_files",
    "polo_clickhouse_distribution_queue_errors",
}
# What the demo data makes fire (dev/clickhouse/demo_data.py, dev/aws/demo_data.py).
EXPECTED = {
    "PoloCollectorStale": "critical",  # cost_explorer_sync stopped 5 h ago; config_rds failing for 2 h
    "PoloCollectorFailing": "warning",  # config_rds: 4+ failures in a row
    # The stale collectors burn their freshness budget at 200x (every key stale): the pages
    # (critical) are left out by their rules while PoloCollectorStale is pending or firing, and
    # inhibited by it (one incident, one page); the tickets are inhibited by the critical.
    "PoloCollectorFreshnessBudgetBurn": "warning",
    "PoloAccountNoAccess": "warning",  # 100000000019
    "PoloAccountPendingSetup": "warning",  # 100000000020
    "PoloDeadLetterQueueNotEmpty": "critical",  # polo-events-dlq holds 3 messages
    "PoloCollectorOutputCollapsed": "critical",  # config_network: zero events everywhere for the last hour
    "PoloLambdaThrottled": "warning",  # polo-cur-ingest throttled twice a minute
    "PoloOwnCostForecastOverBudget": "warning",  # demo costs ~$12.70 a day, budget $300 (examples/local.yml)
    "PoloWatchdog": "info",
}
# Rolled up per collector: exactly these collectors page as stale, and fail.
STALE_COLLECTORS = {"cost_explorer_sync", "config_rds"}
FAILING_COLLECTORS = {"config_rds"}
# May fire as well: a random 1% of the demo's runs fail, and one failed run can leave a key
# just past 2 × its interval for a minute (production's `for: 15m` rides that out; the e2e
# overlay's `for:` does not). Counted in the chat budget, never paging.
# The dev ClickHouse started with the stack: uptime() < 180 s for its first minutes (info, routed
# to the blackhole receiver, so never delivered).
MAY_FIRE = {"PoloCollectorKeysStale": "warning", "PoloClickHouseDiskFullWithinDay": "warning", "PoloClickHouseRestarted": "info"}
# Alerts on this machine's real disk (the dev ClickHouse reports the host's free space): the
# 6-hour projection of a series minutes old, on a disk other builds are filling, comes and goes
# with the overlay's 30 s `for:`. Delivered to chat like any warning (checked above), but not
# part of the demo data's notification budget.
HOST_DISK = {"PoloClickHouseDiskFullWithinDay"}
# Collectors with a few stale keys (the partial cur_ingest key, a random failure) burn their
# freshness budget at a few times the sustainable rate: a PoloCollectorFreshnessBudgetBurn
# ticket (1d/3d pairs) in chat, at most one per such collector.
MAY_TICKET = {"PoloCollectorKeysStale", "PoloCollectorFreshnessBudgetBurn"}
NO_ACCESS = "100000000019"
RECEIVERS = {"critical": {"pager", "chat"}, "warning": {"chat"}, "info": {"heartbeat"}}
# The pager's budget: one notification group per incident, keyed by the group labels.
INCIDENTS = {
    ("PoloCollectorStale", "cost_explorer_sync"),
    ("PoloCollectorStale", "config_rds"),
    ("PoloDeadLetterQueueNotEmpty", "polo-events-dlq"),
    ("PoloCollectorOutputCollapsed", "config_network"),
}
# Pages the pager may get beyond the incidents: cur_ingest (a partial key and random single
# failures, about 3x its freshness budget by the data) paged once in three full runs through the
# fast burn pair, after the exporter and Prometheus restarts of the lifecycle cases; whether that
# 14.4x burn is real or an artefact of the restarts is not established (open, see the issue 23
# notes). Allowed once, named, never for another collector.
MAY_PAGE = {("PoloCollectorFreshnessBudgetBurn", "cur_ingest")}
# Chat: the four pages for the record plus one message per expected warning group (no-access
# and pending accounts, the throttled Lambda, Polo's own cost over budget, the disk when this machine's is full), and at most
# one PoloCollectorKeysStale per collector naming a few keys (the partial cur_ingest key of the
# demo data, random single failures) with at most one freshness-SLO ticket for such a collector.
# Nothing per key: 7 to 10 messages so far, never more than this.
CHAT_BUDGET = 14


class BudgetStack(Stack):
    """The stack with the shipped Alertmanager routing, except for the time intervals: always
    business hours, never maintenance (so the budget does not depend on when it runs)."""

    def _start_alertmanager(self):
        super()._start_alertmanager()
        path = os.path.join(self.workdir, "alertmanager", "alertmanager.yml")
        with open(path) as f:
            cfg = yaml.safe_load(f)
        names = {t["name"] for t in cfg.get("time_intervals", [])}
        assert names == {"business_hours", "maintenance"}, f"shipped time_intervals changed: {names}"
        cfg["time_intervals"] = [
            {"name": "business_hours", "time_intervals": [{"times": [{"start_time": "00:00", "end_time": "24:00"}]}]},
            {"name": "maintenance", "time_intervals": [{"years": ["1999"]}]},
        ]
        with open(path, "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
        urllib.request.urlopen(urllib.request.Request(self.url("alertmanager") + "/-/reload", data=b"", method="POST"), timeout=10)
        status = get_json(self.url("alertmanager") + "/api/v2/status")
        assert "1999" in status["config"]["original"], "Alertmanager did not reload the overlay"

# The lifecycle cases (issue 21): the exporter frozen for two scrape intervals, the exporter
# restarted, Prometheus restarted with the production `for:` of the paging rules; each while the
# incidents page, and after each the receivers must have got nothing new: no "resolved", no
# second page. PoloExporterDown keeps its production `for: 5m` throughout (an outage of seconds
# must not page). Prometheus resends firing alerts every RESEND, so Alertmanager's copy expires
# 4 × RESEND (40 s) after the last one, as production's 4 minutes do before its 5-minute `for:`:
# an alert that went back to pending after a restart would be sent as resolved within the check.
RESEND = "10s"
PAGING = {"PoloCollectorStale", "PoloDeadLetterQueueNotEmpty", "PoloCollectorOutputCollapsed"}
PRODUCTION_FOR_S = 300


def lifecycle(stack, incident):
    interval = int(stack.interval.rstrip("s"))

    def paging():
        # activeAt to the second: a restored alert's start comes back from ALERTS_FOR_STATE in seconds.
        return {(a["labels"]["alertname"], a["labels"].get("collector") or a["labels"].get("queue")): int(parse_time(a["activeAt"]))
                for a in stack.firing() if a["labels"]["alertname"] in PAGING}

    def up(value):
        return lambda: [r for r in stack.query('up{job="polo-exporter"}') if r["value"][1] == value]

    def settle():
        # The target back, then enough evaluations and group intervals for anything to be sent.
        wait_for("exporter target up", up("1"), 60)
        time.sleep(6 * interval)

    def nothing_new(case, before, pages_before, notes_before):
        after = paging()
        notes = stack.sink.notifications()[notes_before:]
        resolved = [(n["receiver"], incident(n["notification"])) for n in notes if n["notification"].get("status") == "resolved"
                    and not all(a["labels"]["alertname"] in MAY_FIRE for a in n["notification"].get("alerts", []))]
        # Paged again: a pager notification about an incident that was paging before the case.
        # Any other page fails too, except the one of MAY_PAGE (seen once after the restarts).
        pages = [incident(n["notification"]) for n in notes if n["receiver"] == "pager"]
        again = [p for p in pages if p in pages_before]
        others = [p for p in pages if p not in pages_before and p not in MAY_PAGE]
        down = [n["receiver"] for n in notes if any(a["labels"]["alertname"] == "PoloExporterDown" for a in n["notification"].get("alerts", []))]
        check(f"{case}: the pages still fire with their first start, nothing resolved, nothing paged again",
              after == before and len(before) == len(pages_before) and not resolved and not again and not others and not down,
              f"firing before {sorted(before)}, after {sorted(after)}; resolved {resolved}; paged again {again}; other pages {others}; exporter-down {down}")

    before = paging()
    pages_before = {i for i in INCIDENTS}
    print(f"     lifecycle: {len(before)} pages firing: {sorted(before)}", flush=True)

    # (a) The exporter frozen: its scrapes time out, every series goes stale.
    mark = len(stack.sink.notifications())
    stack.pause("exporter")
    try:
        wait_for("exporter target down", up("0"), 60)
        time.sleep(2 * interval)
    finally:
        stack.pause("exporter", paused=False)
    settle()
    nothing_new("exporter unreachable for two scrape intervals", before, pages_before, mark)

    # (b) The exporter restarted: scrapes fail until it listens again, then it loads collector_runs.
    mark = len(stack.sink.notifications())
    stack.stop_exporter()
    wait_for("exporter target down", up("0"), 60)
    stack.start_exporter()
    settle()
    nothing_new("exporter restarted", before, pages_before, mark)

    # (c) Prometheus restarted with the production `for:` of the paging rules, once their alerts
    # have been active for longer than it (as in production, where they have fired for a while).
    oldest = min(time.time() - t for t in paging().values())
    time.sleep(max(0, PRODUCTION_FOR_S + 15 - oldest))
    mark = len(stack.sink.notifications())
    stack.keep_for |= PAGING
    stack.restart_prometheus()
    settle()
    time.sleep(4 * int(RESEND.rstrip("s")))  # past Alertmanager's expiry of the last copies sent before the restart
    nothing_new(f"Prometheus restarted (paging rules at for: {PRODUCTION_FOR_S // 60}m)", before, pages_before, mark)


def explain_may_page(stack):
    """For a page of MAY_PAGE (cause open), prints what its collector's SLO series did over the
    run, so the run that sees it says why: the burn rates, the counters' rates, the keys by
    health and the alert's own description."""
    notes = [n["notification"] for n in stack.sink.notifications() if n["receiver"] == "pager"]
    seen = {(a["labels"]["alertname"], a["labels"].get("collector")): a for n in notes for a in n.get("alerts", [])}
    for (alertname, collector), alert in seen.items():
        if (alertname, collector) not in MAY_PAGE:
            continue
        print(f"     MAY_PAGE {alertname} {collector}: {alert['labels']} {alert['annotations'].get('description')}", flush=True)
        c = f'collector="{collector}"'
        for expr in (f"collector:polo_collector_slo_burn_rate:5m{{{c}}}[60m]",
                     f"collector:polo_collector_slo_burn_rate:1h{{{c}}}[60m]",
                     f"sum(rate(polo_collector_stale_key_seconds_total{{{c}}}[1m]))[60m:30s]",
                     f"sum(rate(polo_collector_key_seconds_total{{{c}}}[1m]))[60m:30s]",
                     f"polo_collector_stale_key_seconds_total{{{c}}}[60m]",
                     f"polo_collector_keys{{{c}}}[60m]",
                     f"ALERTS{{alertname=\"{alertname}\",{c}}}[60m]"):
            try:
                for series in stack.query(expr):
                    points = " ".join(f"{int(float(t)) % 10000}:{float(v):.4g}" for t, v in series["values"])
                    print(f"       {expr} {series['metric']}: {points}", flush=True)
            except Exception as err:  # diagnostics only: never fail the check on them
                print(f"       {expr}: {err}", flush=True)


def parse_time(text):
    """An RFC 3339 time of Prometheus's API (nanoseconds, Z) as a Unix time."""
    import datetime
    head, _, frac = text.rstrip("Z").partition(".")
    return datetime.datetime.fromisoformat(head).replace(tzinfo=datetime.timezone.utc).timestamp() + float("0." + (frac or "0"))


results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f"\n     {detail}"), flush=True)


# The metric catalog: one `| `polo_name` | type | labels | help |` row per family.
CATALOG = "docs/reference/metrics.md"


def catalog():
    with open(os.path.join(ROOT, CATALOG)) as f:
        names = sorted(set(re.findall(r"^\| `(polo_[a-z0-9_]+)`", f.read(), re.M)))
    if not names:
        raise RuntimeError(f"{CATALOG}: no `| `polo_...` |` rows: the catalog moved or changed format")
    return names


def main():
    catalog()  # before starting anything: fails at once if the catalog has no rows
    workdir = tempfile.mkdtemp(prefix="polo-e2e-")
    stack = BudgetStack(workdir, rule_for="10s", interval="5s", aws_static=True, clickhouse_static=True,
                        keep_for={"PoloExporterDown"}, prometheus_args=[f"--rules.alert.resend-delay={RESEND}"])
    try:
        stack.start()
        wait_for("exporter target up", lambda: [r for r in stack.query('up{job="polo-exporter"}') if r["value"][1] == "1"], 60)
        check("exporter target is up", True)
        # Enough scrapes for rates and for every source to have run.
        wait_for("source series", lambda: len(stack.query("polo_exporter_source_up == 1")) == 6, 60)
        # Queries that are not the exporter's, so the query-log families have something to count
        # (the frozen demo server runs none of its own); on a loaded machine the query log and the
        # scrapes take a while to show them, hence a wait rather than a fixed sleep.
        for _ in range(3):
            req = urllib.request.Request(stack.url("clickhouse") + "/", data=b"SELECT count() FROM polo.collector_runs")
            urllib.request.urlopen(req, timeout=30).read()
        time.sleep(20)

        def missing_families():
            return [n for n in catalog() if n not in NO_DEMO_DATA and not stack.query(f'count({{__name__=~"{n}(_bucket)?"}})')]
        try:
            wait_for("every catalog family", lambda: not missing_families(), 90)
        except TimeoutError:
            pass
        missing = missing_families()
        check(f"every family of the catalog ({CATALOG}) has samples in Prometheus", not missing, f"missing: {missing}")

        with open(os.path.join(ROOT, "deploy/grafana/dashboards/polo-system-status.json")) as f:
            dashboard = json.load(f)
        empty, unknown, skipped = [], [], 0
        families = set(catalog())
        for panel in dashboard["panels"]:
            for t in panel.get("targets", []):
                expr = t["expr"].replace("$__rate_interval", "1m").replace("$instance", ".*").replace("$job", ".*").replace("$collector", "config_ec2")
                names = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in re.findall(r"(?<![:a-z0-9_])polo_[a-z0-9_]+(?![:a-z0-9_])", expr)}
                unknown += [f"{panel['title']}: {n}" for n in sorted(names) if n not in families and n + "_total" not in families]
                if names & NO_DEMO_DATA:
                    skipped += 1  # on a family the demo cannot produce: its name is checked, not its data
                elif not stack.query(expr):
                    empty.append(f"{panel['title']}: {t['expr']}")
        check(f"every dashboard query returns data ({skipped} on families the demo lacks: names in the catalog)",
              not empty and not unknown, "\n     ".join(empty + [f"not in the catalog: {u}" for u in unknown]))

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
        check("exactly the expected alerts fire", set(expected) <= names <= set(expected) | set(MAY_FIRE),
              f"expected {sorted(expected)} (maybe {sorted(MAY_FIRE)}), firing {sorted(names)}")

        firing = stack.firing()
        stale = {a["labels"].get("collector") for a in firing if a["labels"]["alertname"] == "PoloCollectorStale"}
        check(f"one stale page per broken collector, {len(STALE_COLLECTORS)} in all (was one per key)", stale == STALE_COLLECTORS
              and len([a for a in firing if a["labels"]["alertname"] == "PoloCollectorStale"]) == len(STALE_COLLECTORS), f"stale: {sorted(stale)}")
        failing = [a for a in firing if a["labels"]["alertname"] == "PoloCollectorFailing"]
        check("one failure warning per failing collector, naming its keys",
              {a["labels"].get("collector") for a in failing} == FAILING_COLLECTORS and len(failing) == len(FAILING_COLLECTORS)
              and all(re.search(r"^57 of 57 keys of config_rds failed .*, … and 54 more\.", a["annotations"]["description"]) for a in failing),
              f"{[(a['labels'], a['annotations'].get('description')) for a in failing]}")
        collapsed = [(a["labels"].get("collector"), a["labels"]["severity"]) for a in firing if a["labels"]["alertname"] == "PoloCollectorOutputCollapsed"]
        check("output collapse: one page for config_network, nothing for the healthy collectors (their events vary ±30 %)",
              collapsed == [("config_network", "critical")], f"{collapsed}")
        about_no_access = [a["labels"] for a in firing if NO_ACCESS in json.dumps(a) and a["labels"]["alertname"] != "PoloAccountNoAccess"]
        check(f"the no_access account {NO_ACCESS} appears in no alert but its own", not about_no_access, f"{about_no_access}")

        def delivered():
            got = {}
            for n in stack.sink.notifications():
                for alert in n["notification"].get("alerts", []):
                    got.setdefault(alert["labels"]["alertname"], set()).add(n["receiver"])
            return got

        # PoloCollectorFailing is inhibited by the stale page of the same collector (critical silences warning).
        deliverable = {name: sev for name, sev in expected.items() if name not in ("PoloCollectorFailing", "PoloCollectorFreshnessBudgetBurn")}

        def all_delivered():
            got = delivered()
            return got if all(RECEIVERS[sev] <= got.get(name, set()) for name, sev in deliverable.items()) else None

        try:
            got = wait_for("notifications at the sink", all_delivered, 60)
        except TimeoutError:
            got = delivered()
        wrong = {n: sorted(got.get(n, set())) for n, sev in deliverable.items() if got.get(n, set()) != RECEIVERS[sev]}
        wrong.update({n: sorted(r) for n, r in got.items() if n in MAY_FIRE and r != RECEIVERS[MAY_FIRE[n]]})
        check("alerts reach the receivers the routing promises (critical: pager+chat, warning: chat, watchdog: heartbeat)", not wrong, f"{wrong}")
        check("a warning silenced by a critical of the same collector is not delivered", "PoloCollectorFailing" not in got, f"{got.get('PoloCollectorFailing')}")

        # The budget, from the receivers' side, after a few more group intervals for stragglers.
        time.sleep(20)
        notes = stack.sink.notifications()
        pager = [n["notification"] for n in notes if n["receiver"] == "pager"]
        chat = [n["notification"] for n in notes if n["receiver"] == "chat"]
        host_disk = [n for n in chat if n.get("groupLabels", {}).get("alertname") in HOST_DISK]
        chat = [n for n in chat if n not in host_disk]
        heartbeat = [n["notification"] for n in notes if n["receiver"] == "heartbeat"]

        def incident(n):
            # A collector's pages are grouped by `collector` alone (no alertname among the group
            # labels): the alert names the group holds, joined.
            g = n.get("groupLabels", {})
            name = (g.get("alertname") or n.get("commonLabels", {}).get("alertname")
                    or "+".join(sorted({a["labels"]["alertname"] for a in n.get("alerts", [])})))
            return (name, g.get("collector") or g.get("queue") or g.get("aws_account_id") or g.get("function") or g.get("backend"))

        pager_groups = {n["groupKey"] for n in pager}
        pager_incidents = {incident(n) for n in pager}
        chat_groups = {n["groupKey"] for n in chat}
        print(f"     budget: pager {len(pager)} notifications in {len(pager_groups)} groups {sorted(pager_incidents)}; "
              f"chat {len(chat)} notifications in {len(chat_groups)} groups {sorted({incident(n) for n in chat})}; "
              f"heartbeat {len(heartbeat)}; host disk (not budgeted) {len(host_disk)}", flush=True)
        check(f"pager: one notification group per incident, {len(INCIDENTS)} incidents", pager_incidents - MAY_PAGE == INCIDENTS
              and len(pager_groups) == len(pager_incidents), f"{sorted(pager_incidents)} in {len(pager_groups)} groups")
        check("pager: one notification per group (no re-notification storm)", len(pager) == len(pager_groups), f"{len(pager)} notifications")
        paged_no_access = [a["labels"] for n in pager for a in n.get("alerts", []) if NO_ACCESS in json.dumps(a)]
        check(f"pager: nothing about the no_access account {NO_ACCESS}", not paged_no_access, f"{paged_no_access}")
        check(f"chat: at most {CHAT_BUDGET} messages, one per group", len(chat) <= CHAT_BUDGET and len(chat) == len(chat_groups),
              f"{len(chat)} messages in {len(chat_groups)} groups")
        expected_chat = {i for i in INCIDENTS} | {(n, None) for n, sev in deliverable.items() if sev == "warning"}
        extra = [incident(n) for n in chat if incident(n) not in expected_chat and (incident(n)[0], None) not in expected_chat]
        keys_stale = [a for n in chat for a in n.get("alerts", []) if a["labels"]["alertname"] == "PoloCollectorKeysStale"]
        few_keys = all(int(a["annotations"]["description"].split(" ", 1)[0]) <= 3 for a in keys_stale)
        check("chat: beyond the pages and the expected warnings, only one PoloCollectorKeysStale (and its SLO ticket) per collector about a few keys",
              all(e[0] in MAY_TICKET for e in extra) and len(extra) == len(set(extra)) and few_keys
              and not {e[1] for e in extra if e[0] == "PoloCollectorFreshnessBudgetBurn"} & STALE_COLLECTORS,
              f"extra: {extra}; keys-stale: {[a['annotations']['description'] for a in keys_stale]}")
        per_key = [n for n in pager + chat if any(a["labels"].get("aws_region") for a in n.get("alerts", []))]
        check("no notification is about a single account/region key", not per_key, f"{len(per_key)} such notifications")
        check("heartbeat: the Watchdog arrives", len(heartbeat) >= 1)

        lifecycle(stack, incident)

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
        try:
            wait_for("the outage page", lambda: ("PoloExporterSourceDown", "clickhouse") in {
                incident(n["notification"]) for n in stack.sink.notifications() if n["receiver"] == "pager"}, 30)
        except TimeoutError:
            pass
        time.sleep(10)
        pager_after = [n["notification"] for n in stack.sink.notifications() if n["receiver"] == "pager"]
        new_incidents = {incident(n) for n in pager_after} - INCIDENTS - MAY_PAGE
        resolved = [incident(n) for n in pager_after if n.get("status") == "resolved"]
        outage_pages = [n for n in pager_after if incident(n) == ("PoloExporterSourceDown", "clickhouse")]
        print(f"     outage: {len(outage_pages)} page(s) for ClickHouse down, sources {sorted({a['labels']['source'] for n in outage_pages for a in n['alerts']})}", flush=True)
        check("ClickHouse down: one more page (the outage, its sources in one group), none resolved", new_incidents == {("PoloExporterSourceDown", "clickhouse")}
              and not resolved, f"new: {sorted(new_incidents)}, resolved: {resolved}")

        stack.start_clickhouse(seed="empty")
        try:
            wait_for("source back up", lambda: [r for r in stack.query('polo_exporter_source_up{source="collector_runs"}') if r["value"][1] == "1"], 60)
            ok = True
        except TimeoutError:
            ok = False
        check("ClickHouse back: the exporter recovers without a restart", ok)
    finally:
        try:
            explain_may_page(stack)
        except Exception as err:  # the stack may not have come up
            print(f"     (no MAY_PAGE diagnostics: {err})", flush=True)
        stack.stop()
        if all(results):
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"logs kept in {workdir}")
    print(f"e2e: {sum(results)} passed, {len(results) - sum(results)} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
