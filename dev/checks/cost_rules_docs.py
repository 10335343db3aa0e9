#!/usr/bin/env python3
"""The cost alert rules (deploy/prometheus/rules/polo-cost.rules.yml), their runbooks
(docs/runbooks-cost.md) and their unit tests (tests/prometheus/polo-cost.rules.test.yml) agree:
every alert has severity, a static summary, description, runbook_url to its own section with the
four parts, a dashboard_url, a firing case and a case where it must not fire; and the
monitoring-mixin conventions of dev/checks/rules_docs.py (the same function)."""

import os
import re
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rules_docs import hold_errors, mixin_errors  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNBOOK = "https://github.com/polo/polo-exporter/blob/main/docs/runbooks-cost.md#"


def main():
    errors = []
    with open(os.path.join(ROOT, "deploy/prometheus/rules/polo-cost.rules.yml")) as f:
        alerts = [r for g in yaml.safe_load(f)["groups"] for r in g["rules"] if "alert" in r]
    with open(os.path.join(ROOT, "docs/runbooks-cost.md")) as f:
        runbooks = f.read()
    sections = {m.group(1): m.start() for m in re.finditer(r"^## (\w+)$", runbooks, re.M)}
    for a in alerts:
        name, ann = a["alert"], a.get("annotations", {})
        errors += mixin_errors(a) + hold_errors(a)
        for key in ("runbook_url", "dashboard_url"):
            if not ann.get(key):
                errors.append(f"{name}: no {key}")
        if ann.get("runbook_url") != RUNBOOK + name.lower():
            errors.append(f"{name}: runbook_url is not {RUNBOOK + name.lower()}")
        if name not in sections:
            errors.append(f"{name}: no '## {name}' section in docs/runbooks-cost.md")
            continue
        start = sections[name]
        body = runbooks[start:min([p for p in sections.values() if p > start] + [len(runbooks)])]
        for part in ("**Meaning.**", "**Impact.**", "**Diagnosis.**", "**Mitigation.**"):
            if part not in body:
                errors.append(f"runbook {name}: no {part}")
    for extra in set(sections) - {a["alert"] for a in alerts}:
        errors.append(f"runbook section {extra} has no alert")
    with open(os.path.join(ROOT, "tests/prometheus/polo-cost.rules.test.yml")) as f:
        cases = [c for t in yaml.safe_load(f)["tests"] for c in t.get("alert_rule_test", [])]
    for a in alerts:
        if not any(c["alertname"] == a["alert"] and c.get("exp_alerts") for c in cases):
            errors.append(f"{a['alert']}: no firing test case")
        if not any(c["alertname"] == a["alert"] and not c.get("exp_alerts") for c in cases):
            errors.append(f"{a['alert']}: no test case where it must not fire")
    if errors:
        print("\n".join(errors))
        return 1
    print(f"{len(alerts)} cost alerts: runbooks and tests complete")
    return 0


if __name__ == "__main__":
    sys.exit(main())
