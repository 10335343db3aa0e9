#!/usr/bin/env python3
"""The alert rules, their runbooks and their unit tests agree:
- every alert the issues name exists, with severity, summary, description and runbook_url;
- the monitoring-mixin conventions that `mixtool lint` enforces: CamelCase names, severity
  critical/warning/info, a static `summary` that is one sentence starting with a capital letter
  and ending in a period, a templated `description`;
- every runbook_url points at a section of docs/runbooks.md with the four parts;
- every alert has a firing case, a case with no alert (before `for:` and/or negative) in
  tests/prometheus, and every recording rule a promql_expr_test;
- every row of docs/clickhouse.md's comparison with the operators' alert sets marked covered or
  partly names Polo alerts that exist and have a firing test, and each row has a verdict;
- every alert but PoloExporterDown and PoloWatchdog keeps firing when its input vanishes for a
  few scrapes (`keep_firing_for` of at least HOLD_MINUTES: PoloExporterDown's `for: 5m` plus
  Alertmanager's group_wait, so that a longer outage is carried by its inhibition)."""

import argparse
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
    "PoloCollectorKeysStale",
]
# mixtool lint's rules (monitoring-mixins/mixtool, pkg/mixer/lint.go), plus "one sentence".
CAMEL_CASE = re.compile(r"^([A-Z]+[a-z0-9]+)+$")
TEMPLATE = re.compile(r"\{\{.+\}\}", re.S)
SENTENCE = re.compile(r"^[A-Z].+\.$", re.S)
SEVERITIES = ("critical", "warning", "info")
# Alerts whose input never vanishes with the exporter's series (`up`, `vector(1)`).
NO_HOLD = ("PoloExporterDown", "PoloWatchdog")
HOLD_MINUTES = 10


def minutes(duration):
    """A Prometheus duration (`90s`, `10m`, `1h30m`, `1d`) in minutes."""
    units = {"ms": 1 / 60000, "s": 1 / 60, "m": 1, "h": 60, "d": 1440, "w": 10080, "y": 525600}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", str(duration or ""))
    return sum(int(n) * units[u] for n, u in parts)


def hold_errors(alert):
    """No false resolve when the exporter misses a few scrapes: a list of messages."""
    name = alert["alert"]
    if name in NO_HOLD:
        return []
    if minutes(alert.get("keep_firing_for")) < HOLD_MINUTES:
        return [f"{name}: keep_firing_for {alert.get('keep_firing_for')!r} is below {HOLD_MINUTES}m (a missed scrape would resolve it)"]
    return []


def mixin_errors(alert):
    """The mixin conventions for one alerting rule; a list of messages."""
    name, labels, ann = alert["alert"], alert.get("labels", {}), alert.get("annotations", {})
    errors = []
    if not CAMEL_CASE.match(name):
        errors.append(f"{name}: name is not CamelCase")
    if labels.get("severity") not in SEVERITIES:
        errors.append(f"{name}: severity {labels.get('severity')!r} is not one of {', '.join(SEVERITIES)}")
    summary, description = ann.get("summary", ""), ann.get("description", "")
    if not summary:
        errors.append(f"{name}: no summary")
    elif TEMPLATE.search(summary) or "{{" in summary:
        errors.append(f"{name}: summary must be static (no templates)")
    elif not SENTENCE.match(summary):
        errors.append(f"{name}: summary must start with a capital letter and end with a period: {summary!r}")
    # One sentence: no sentence end before the last character (a period, ! or ? followed by a
    # space and a capital letter), no line break.
    elif "\n" in summary.strip() or re.search(r"[.!?]\s+[A-Z]", summary[:-1]):
        errors.append(f"{name}: summary must be one sentence: {summary!r}")
    if not description:
        errors.append(f"{name}: no description")
    elif not TEMPLATE.search(description):
        errors.append(f"{name}: description must use templates (labels or value)")
    return errors
RUNBOOK = "https://github.com/polo/polo-exporter/blob/main/docs/runbooks.md#"


# --self-test: bad copies of the shipped rules, one convention broken in each, and the message
# this check must print for it.
BREAKAGES = [
    ("snake_case name", lambda a: a.update(alert="polo_collector_stale"), "polo_collector_stale: name is not CamelCase"),
    ("severity outside the three", lambda a: a["labels"].update(severity="page"), "severity 'page' is not one of"),
    ("templated summary", lambda a: a["annotations"].update(summary="Collector {{ $labels.collector }} is stale."), "summary must be static"),
    ("summary without a period", lambda a: a["annotations"].update(summary="A Polo collector is stale"), "summary must start with a capital letter and end with a period"),
    ("summary in lower case", lambda a: a["annotations"].update(summary="a Polo collector is stale."), "summary must start with a capital letter and end with a period"),
    ("summary of two sentences", lambda a: a["annotations"].update(summary="A Polo collector is stale. Polo shows old data."), "summary must be one sentence"),
    ("static description", lambda a: a["annotations"].update(description="The collector is stale."), "description must use templates"),
    ("no description", lambda a: a["annotations"].pop("description"), "PoloCollectorStale: no description"),
    ("no keep_firing_for", lambda a: a.pop("keep_firing_for"), "PoloCollectorStale: keep_firing_for None is below"),
    ("a short keep_firing_for", lambda a: a.update(keep_firing_for="2m"), "PoloCollectorStale: keep_firing_for '2m' is below"),
]


def self_test(rules_path):
    """Feeds this check bad copies of the rules; each must fail with its message."""
    import subprocess
    import tempfile
    with open(rules_path) as f:
        good = yaml.safe_load(f)
    failures = []
    with tempfile.TemporaryDirectory(prefix="polo-rules-") as tmp:
        for title, breakage, message in BREAKAGES:
            bad = yaml.safe_load(yaml.safe_dump(good))
            target = next(r for g in bad["groups"] for r in g["rules"] if r.get("alert") == "PoloCollectorStale")
            breakage(target)
            path = os.path.join(tmp, "bad.rules.yml")
            with open(path, "w") as f:
                yaml.safe_dump(bad, f, sort_keys=False)
            run = subprocess.run([sys.executable, os.path.abspath(__file__), "--rules", path], capture_output=True, text=True)
            if run.returncode == 0 or message not in run.stdout:
                failures.append(f"{title}: exit {run.returncode}, output lacks {message!r}:\n{run.stdout}")
    if failures:
        print("\n".join(failures))
        return 1
    print(f"self-test: all {len(BREAKAGES)} bad copies of the rules rejected")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", default=os.path.join(ROOT, "deploy/prometheus/rules/polo.rules.yml"))
    parser.add_argument("--self-test", action="store_true", help="check that bad copies of --rules are rejected")
    args = parser.parse_args()
    if args.self_test:
        return self_test(args.rules)
    errors = []
    with open(args.rules) as f:
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
        name, ann = a["alert"], a.get("annotations", {})
        errors += mixin_errors(a) + hold_errors(a)
        if not ann.get("runbook_url"):
            errors.append(f"{name}: no runbook_url")
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
    errors += comparison_errors(set(names), firing)
    if errors:
        print("\n".join(errors))
        return 1
    print(f"{len(names)} alerts, {len(records)} recording rules: runbooks and tests complete")
    return 0


def comparison_errors(alerts, firing):
    """docs/clickhouse.md, "Alerts compared with the operators' sets": a row per reference alert,
    `| reference | covered/partly/no | how |`; covered and partly rows name tested Polo alerts."""
    with open(os.path.join(ROOT, "docs/clickhouse.md")) as f:
        text = f.read()
    start = text.find("## Alerts compared with the operators' sets")
    if start < 0:
        return ["docs/clickhouse.md: no section 'Alerts compared with the operators' sets'"]
    section = text[start:text.find("\n## ", start + 3)]
    errors, rows = [], 0
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not re.match(r"^(Altinity|mixin) `", cells[0]):
            continue
        rows += 1
        verdict, how = cells[1], cells[2]
        if verdict not in ("covered", "partly", "no"):
            errors.append(f"comparison {cells[0]}: verdict {verdict!r} is not covered, partly or no")
            continue
        named = set(re.findall(r"`(Polo[A-Za-z]+)", how))
        if verdict != "no" and not named:
            errors.append(f"comparison {cells[0]}: {verdict} but names no Polo alert")
        for name in named if verdict != "no" else ():
            if name not in alerts:
                errors.append(f"comparison {cells[0]}: {name} is not an alert of the rules")
            elif name not in firing:
                errors.append(f"comparison {cells[0]}: {name} has no firing test")
    if rows < 41:
        errors.append(f"comparison: {rows} rows, expected the 37 Altinity and 4 mixin alerts")
    return errors


if __name__ == "__main__":
    sys.exit(main())
