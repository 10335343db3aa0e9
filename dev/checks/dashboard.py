#!/usr/bin/env python3
"""Offline checks of deploy/grafana/dashboards/polo-system-status.json: a valid model with a
fixed uid and no export placeholders, a datasource variable used by every panel, a unit and a
description on every panel, $__rate_interval in every rate/increase, every metric name in the
metric catalog (docs/reference/metrics.md) or the recording rules, and threshold steps equal to the alert thresholds."""

import json
import os
import re
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROMETHEUS_OWN = {"up", "scrape_duration_seconds"}
# Panel title -> (alert whose threshold the panel's red step must equal, how to derive it).
THRESHOLDS = {
    "Disk used": ("PoloClickHouseDiskAlmostFull", "same"),
    "Query latency p50 / p95 / p99": ("PoloClickHouseQueryLatencyHigh", "same"),
    "Most parts in one partition": ("PoloClickHouseTooManyParts", "same"),
    "Oldest message age": ("PoloSqsOldestMessageTooOld", "same"),
    "Queue depth": ("PoloSqsBacklog", "same"),
    # Message counts are integers: "> 0" is "red from 1".
    "Dead-letter queue depth": ("PoloDeadLetterQueueNotEmpty", "next_integer"),
    # The card shows a health state (0 healthy, 1 late, 2 stale) computed from the thresholds the
    # exporter exports; red is state 2, past polo_collector_stale_threshold_seconds as in the alert.
    "$collector": ("PoloCollectorStale", "stale_state"),
}


# The metric catalog: one `| `polo_name` | type | labels | help |` row per family.
CATALOG = "docs/reference/metrics.md"


def catalog():
    with open(os.path.join(ROOT, CATALOG)) as f:
        names = set(re.findall(r"^\| `(polo_[a-z0-9_]+)`", f.read(), re.M))
    if not names:
        raise SystemExit(f"{CATALOG}: no `| `polo_...` |` rows: the catalog moved or changed format")
    with open(os.path.join(ROOT, "deploy/prometheus/rules/polo.rules.yml")) as f:
        rules = [r for g in yaml.safe_load(f)["groups"] for r in g["rules"]]
    names |= {r["record"] for r in rules if "record" in r}
    for n in list(names):
        if n.endswith("_seconds") or n.startswith("polo_clickhouse_query_duration"):
            names |= {n + "_bucket", n + "_sum", n + "_count"}
    alert_thresholds = {}
    for r in rules:
        if "alert" in r:
            # The threshold is the number after the comparison on the expression's first line.
            m = re.search(r">=?\s*([0-9.]+)\s*$", r["expr"].strip().splitlines()[0])
            alert_thresholds[r["alert"]] = float(m.group(1)) if m else None
    return names | PROMETHEUS_OWN, alert_thresholds


def red_step(panel):
    steps = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps", [])
    reds = [s["value"] for s in steps if s.get("color") == "red" and s.get("value") is not None]
    return reds[0] if reds else None


def main():
    errors = []
    path = os.path.join(ROOT, "deploy/grafana/dashboards/polo-system-status.json")
    with open(path) as f:
        text = f.read()
    d = json.loads(text)
    if d.get("uid") != "polo-system-status":
        errors.append(f"uid is {d.get('uid')!r}")
    if d.get("id") is not None:
        errors.append("id must be null for provisioning")
    if "__inputs" in d or "${DS_" in text:
        errors.append("export placeholders (__inputs / ${DS_...}) present")
    variables = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
    if variables.get("datasource", {}).get("type") != "datasource":
        errors.append("no datasource variable")
    names, alert_thresholds = catalog()
    panels = [p for p in d["panels"] if p["type"] != "row"]
    if len({p["id"] for p in d["panels"]}) != len(d["panels"]):
        errors.append("duplicate panel ids")
    for p in panels:
        title = p.get("title", "?")
        if p.get("datasource", {}).get("uid") != "${datasource}":
            errors.append(f"{title}: datasource is not ${{datasource}}")
        if not p.get("description"):
            errors.append(f"{title}: no description")
        if not p.get("fieldConfig", {}).get("defaults", {}).get("unit"):
            errors.append(f"{title}: no unit")
        if not p.get("targets"):
            errors.append(f"{title}: no query")
        for t in p.get("targets", []):
            expr = t.get("expr", "")
            if t.get("datasource", {}).get("uid") != "${datasource}":
                errors.append(f"{title}: a query's datasource is not ${{datasource}}")
            for fn in re.finditer(r"\b(rate|increase|irate)\([^\[]*\[([^\]]+)\]", expr):
                if fn.group(2) != "$__rate_interval":
                    errors.append(f"{title}: {fn.group(1)} over [{fn.group(2)}] instead of [$__rate_interval]")
            stripped = re.sub(r'"[^"]*"', '""', expr)
            stripped = re.sub(r"\[[^\]]*\]", "", stripped)
            stripped = re.sub(r"\b(by|on|without|ignoring|group_left|group_right)\s*\([^)]*\)", "", stripped)
            for token in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", stripped):
                if (token.startswith("polo_") or ":" in token) and token not in names:
                    errors.append(f"{title}: metric {token} is not in the catalog ({CATALOG}) or the recording rules")
    for title, (alert, how) in THRESHOLDS.items():
        p = next((p for p in panels if p["title"] == title), None)
        if p is None:
            errors.append(f"panel {title!r} missing")
            continue
        rule = alert_thresholds.get(alert)
        want = {"same": rule, "next_integer": (rule or 0) + 1, "stale_state": 2}[how]
        if how != "stale_state" and rule is None:
            errors.append(f"{alert}: threshold not found in the rule")
        if how == "stale_state" and not all("polo_collector_stale_threshold_seconds" in t["expr"] for t in p["targets"][:1]):
            errors.append(f"{title}: the card's health does not read polo_collector_stale_threshold_seconds")
        if red_step(p) != want:
            errors.append(f"{title}: red threshold {red_step(p)} differs from {alert}'s {want}")
    sections = {p["title"] for p in d["panels"] if p["type"] == "row"}
    for s in ("Collectors", "Accounts", "ClickHouse", "SQS", "Exporter"):
        if s not in sections:
            errors.append(f"no {s} section")
    if not any(p.get("repeat") == "collector" for p in panels):
        errors.append("no collector card repeated by the collector variable")
    if errors:
        print("\n".join(errors))
        return 1
    print(f"{len(panels)} panels checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
