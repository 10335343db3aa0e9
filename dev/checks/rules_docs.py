#!/usr/bin/env python3
"""The alert rules, their runbooks and their unit tests agree:
- every alert the issues name exists, with severity, summary, description and runbook_url;
- every runbook_url points at a section of docs/runbooks.md with the four parts;
- every alert has a firing case, a case with no alert (before `for:` and/or negative) in
  tests/prometheus, and every recording rule a promql_expr_test."""

import glob
import os
import re
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REQUIRED = [
    "PoloCollectorFailing", "PoloCollectorStale", "PoloAccountNoAccess", "PoloDeadLetterQueueNotEmpty",
    "PoloClickHouseDiskAlmostFull", "PoloAccountPendingSetup", "PoloAccountNotScanned",
    "PoloCollectorDependenciesNotReady", "PoloExporterDown", "PoloExporterSourceDown", "PoloWatchdog",
]
RUNBOOK = "https://github.com/polo/polo-exporter/blob/main/docs/runbooks.md#"


def main():
    errors = []
    with open(os.path.join(ROOT, "deploy/prometheus/rules/polo.rules.yml")) as f:
        rules = [r for g in yaml.safe_load(f)["groups"] for r in g["rules"]]
    alerts = [r for r in rules if "alert" in r]
    records = [r["record"] for r in rules if "record" in r]
    names = sorted({a["alert"] for a in alerts})
    for name in REQUIRED:
        if name not in names:
            errors.append(f"required alert {name} is missing")
    with open(os.path.join(ROOT, "docs/runbooks.md")) as f:
        runbooks = f.read()
    sections = {m.group(1): m.start() for m in re.finditer(r"^## (\w+)$", runbooks, re.M)}
    for a in alerts:
        name, labels, ann = a["alert"], a.get("labels", {}), a.get("annotations", {})
        if labels.get("severity") not in ("critical", "warning", "info", "none"):
            errors.append(f"{name}: severity {labels.get('severity')!r}")
        for key in ("summary", "description", "runbook_url"):
            if not ann.get(key):
                errors.append(f"{name}: no {key}")
        if "{{" in ann.get("summary", ""):
            errors.append(f"{name}: summary must be static")
        if name != "PoloWatchdog" and not ann.get("dashboard_url", "").startswith("/d/polo-system-status/"):
            errors.append(f"{name}: no dashboard_url to the dashboard")
        if ann.get("runbook_url") != RUNBOOK + name.lower():
            errors.append(f"{name}: runbook_url {ann.get('runbook_url')} is not {RUNBOOK + name.lower()}")
        if name not in sections:
            errors.append(f"{name}: no '## {name}' section in docs/runbooks.md")
        else:
            start = sections[name]
            end = min([p for p in sections.values() if p > start] + [len(runbooks)])
            body = runbooks[start:end]
            for part in ("**Meaning.**", "**Impact.**", "**Diagnosis.**", "**Mitigation.**"):
                if part not in body:
                    errors.append(f"runbook {name}: no {part}")
    for extra in set(sections) - set(names):
        errors.append(f"runbook section {extra} has no alert")

    firing, quiet, exprs = set(), set(), set()
    for path in glob.glob(os.path.join(ROOT, "tests/prometheus/*.yml")):
        with open(path) as f:
            doc = yaml.safe_load(f)
        for test in doc["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
            for case in test.get("promql_expr_test", []):
                exprs.update(re.findall(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", case["expr"]))
    for name in names:
        if name not in firing:
            errors.append(f"{name}: no firing test case")
        if name not in quiet and name != "PoloWatchdog":
            errors.append(f"{name}: no test case where it must not fire")
    for record in records:
        if record not in exprs:
            errors.append(f"recording rule {record}: no promql_expr_test")
    if errors:
        print("\n".join(errors))
        return 1
    print(f"{len(names)} alerts, {len(records)} recording rules: runbooks and tests complete")
    return 0


if __name__ == "__main__":
    sys.exit(main())
