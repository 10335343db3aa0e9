#!/usr/bin/env python3
"""The rules of Grafana's dashboard-linter (github.com/grafana/dashboard-linter, Go only: the Go
here is too old to build it), applied to deploy/grafana/dashboards/*.json with every panel's
PromQL parsed by a real PromQL parser (PyPI promql-parser, the Rust crate of GreptimeDB that
follows Prometheus's grammar):

  template-datasource-rule      a `datasource` variable of type datasource, query prometheus
  template-job-rule             a `job` query variable, label_values(..., job), multi and All
  template-instance-rule        an `instance` query variable filtered by $job, multi and All
  template-label-promql-rule    each label_values() variable's selector is valid PromQL
  panel-datasource-rule         every panel and query uses ${datasource}
  panel-title-description-rule  every panel has a title and a description
  panel-units-rule              every panel has a unit that Grafana knows (and overrides too)
  target-promql-rule            every query is valid PromQL (Grafana's $__ variables substituted)
  target-rate-interval-rule     rate/irate/increase range over $__rate_interval
  target-job-rule               every selector has job=~"$job"
  target-instance-rule          every selector has instance=~"$instance"
  target-counter-agg-rule       counters (*_total, *_count, *_bucket, *_sum) only inside rate/irate/increase

Exclusions as dashboard-linter reads them: a `.lint` file next to the dashboard (`exclusions:
RULE: {reason, entries: [{panel, targetIdx}]}`); every exclusion needs a reason and must still
match something (a stale exclusion is an error).

  dashboard_lint.py              lint the shipped dashboards (exit 1 on any violation)
  dashboard_lint.py FILE.json    lint that file (with the .lint next to it, if any)
  dashboard_lint.py --self-test  broken copies of the dashboard (a panel without a unit, a query
                                 without the job matcher, ...) must each fail with their rule"""

import copy
import datetime
import glob
import json
import os
import re
import sys

import promql_parser
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DASHBOARDS = os.path.join(ROOT, "deploy/grafana/dashboards")
DATASOURCE = "${datasource}"
# Grafana's range variables, replaced by durations nothing else uses, recognised after parsing.
RANGE_VARIABLES = {
    "$__rate_interval": datetime.timedelta(seconds=4242),
    "$__interval": datetime.timedelta(seconds=4243),
    "$__range": datetime.timedelta(seconds=4244),
}
COUNTER_FUNCTIONS = {"rate", "irate", "increase"}
COUNTER_SUFFIXES = ("_total", "_count", "_bucket", "_sum")
# Grafana's unit ids (packages/grafana-data/src/valueFormats/categories.ts), the common part.
UNITS = {
    "none", "short", "percent", "percentunit", "humidity", "dB", "hex0x", "hex", "sci", "locale", "pixel",
    "bool", "bool_yes_no", "bool_on_off",
    "ns", "µs", "ms", "s", "m", "h", "d", "dtdurationms", "dtdurations", "dthms", "dtdhms", "timeticks", "clockms", "clocks",
    "dateTimeAsIso", "dateTimeAsIsoNoDateIfToday", "dateTimeAsUS", "dateTimeAsUSNoDateIfToday", "dateTimeAsLocal",
    "dateTimeAsLocalNoDateIfToday", "dateTimeDefault", "dateTimeFromNow",
    "bits", "bytes", "kbytes", "mbytes", "gbytes", "tbytes", "pbytes", "decbits", "decbytes", "deckbytes", "decmbytes",
    "decgbytes", "dectbytes", "decpbytes", "bps", "Bps", "KBs", "MBs", "GBs", "binBps", "binbps",
    "reqps", "rps", "wps", "iops", "opm", "rpm", "wpm", "ops", "cps", "eps", "mps", "recps", "rrecps", "wrecps", "evps",
    "currencyUSD", "currencyEUR", "currencyGBP", "currencyJPY", "hertz", "Hz", "celsius", "watt", "kwatt", "joule",
}


def substitute(expr):
    """The query as Prometheus would get it: Grafana's range variables as durations; other
    variables ($job, $instance, $collector) only ever appear inside label values."""
    for name, value in sorted(RANGE_VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(name, f"{int(value.total_seconds())}s")
    return expr


def children(node):
    kind = type(node).__name__
    if kind == "AggregateExpr":
        return [c for c in (node.expr, node.param) if c is not None]
    if kind == "BinaryExpr":
        return [node.lhs, node.rhs]
    if kind == "Call":
        return list(node.args)
    if kind in ("ParenExpr", "UnaryExpr", "SubqueryExpr"):
        return [node.expr]
    if kind == "MatrixSelector":
        return [node.vector_selector]
    return []


def selectors(node, in_counter_fn=False, parent_call=None):
    """(vector selector, range or None, name of the function it is directly an argument of, whether
    it sits directly inside rate/irate/increase) for every selector of the expression."""
    kind = type(node).__name__
    if kind == "VectorSelector":
        yield node, None, parent_call, False
        return
    if kind == "MatrixSelector":
        yield node.vector_selector, node.range, parent_call, parent_call in COUNTER_FUNCTIONS
        return
    call = node.func.name if kind == "Call" else None
    for child in children(node):
        yield from selectors(child, parent_call=call)


def matchers(vs):
    return {(m.name, str(m.op).rsplit(".", 1)[-1], m.value) for m in vs.matchers.matchers}


def has_matcher(vs, label, variable):
    return any(name == label and variable in value for name, _, value in matchers(vs))


def lint_expr(expr):
    """Violations of one query: [(rule, message)]."""
    try:
        ast = promql_parser.parse(substitute(expr))
    except Exception as e:  # noqa: BLE001 - the parser raises ValueError or its own errors
        return [("target-promql-rule", f"invalid PromQL: {str(e).strip()[:200]}")]
    out = []
    for vs, rng, call, counter_ok in selectors(ast):
        name = vs.name or ""
        if rng is not None and call in COUNTER_FUNCTIONS and rng != RANGE_VARIABLES["$__rate_interval"]:
            out.append(("target-rate-interval-rule", f"{call}({name}[...]) over {rng} instead of $__rate_interval"))
        if not has_matcher(vs, "job", "$job"):
            out.append(("target-job-rule", f"{name or vs} has no job=~\"$job\" matcher"))
        if not has_matcher(vs, "instance", "$instance"):
            out.append(("target-instance-rule", f"{name or vs} has no instance=~\"$instance\" matcher"))
        if name.endswith(COUNTER_SUFFIXES) and not counter_ok:
            out.append(("target-counter-agg-rule", f"counter {name} used outside rate/irate/increase"))
    return out


def lint_dashboard(d):
    """Violations: [(rule, panel title or None, target index or None, message)]."""
    out = []
    variables = {v.get("name"): v for v in d.get("templating", {}).get("list", [])}

    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        out.append(("template-datasource-rule", None, None, "no `datasource` variable of type datasource with query prometheus"))
    for name, rule, must_filter in (("job", "template-job-rule", None), ("instance", "template-instance-rule", "$job")):
        v = variables.get(name)
        query = v.get("query", {}) if v else {}
        query = query.get("query", "") if isinstance(query, dict) else query
        if not v or v.get("type") != "query":
            out.append((rule, None, None, f"no `{name}` query variable"))
            continue
        if (v.get("datasource") or {}).get("uid") != DATASOURCE:
            out.append((rule, None, None, f"`{name}` does not query ${{datasource}}"))
        if not re.match(rf"^label_values\(.*,\s*{name}\s*\)$", query):
            out.append((rule, None, None, f"`{name}` is not label_values(..., {name}): {query!r}"))
        if not (v.get("multi") and v.get("includeAll")):
            out.append((rule, None, None, f"`{name}` must allow several values and All"))
        if must_filter and must_filter not in query:
            out.append((rule, None, None, f"`{name}` is not filtered by {must_filter}"))
    for v in variables.values():
        query = v.get("query")
        query = query.get("query", "") if isinstance(query, dict) else (query or "")
        m = re.match(r"^label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)$", query)
        if v.get("type") == "query" and m:
            try:
                promql_parser.parse(m.group(1))
            except Exception as e:  # noqa: BLE001
                out.append(("template-label-promql-rule", None, None, f"`{v['name']}`: invalid PromQL {m.group(1)!r}: {e}"))

    for p in d.get("panels", []):
        if p.get("type") == "row":
            continue
        title = p.get("title") or ""
        if (p.get("datasource") or {}).get("uid") != DATASOURCE:
            out.append(("panel-datasource-rule", title, None, "panel datasource is not ${datasource}"))
        if not title.strip() or not (p.get("description") or "").strip():
            out.append(("panel-title-description-rule", title, None, "no title or no description"))
        defaults = p.get("fieldConfig", {}).get("defaults", {})
        unit = defaults.get("unit")
        if not unit:
            out.append(("panel-units-rule", title, None, "no unit"))
        elif unit not in UNITS:
            out.append(("panel-units-rule", title, None, f"unit {unit!r} is not a Grafana unit"))
        for o in p.get("fieldConfig", {}).get("overrides", []):
            for prop in o.get("properties", []):
                if prop.get("id") == "unit" and prop.get("value") not in UNITS:
                    out.append(("panel-units-rule", title, None, f"override unit {prop.get('value')!r} is not a Grafana unit"))
        if not p.get("targets"):
            out.append(("target-promql-rule", title, None, "no query"))
        for i, t in enumerate(p.get("targets", [])):
            if (t.get("datasource") or {}).get("uid") != DATASOURCE:
                out.append(("panel-datasource-rule", title, i, "query datasource is not ${datasource}"))
            for rule, message in lint_expr(t.get("expr", "")):
                out.append((rule, title, i, message))
    return out


def load_exclusions(path):
    lint = os.path.join(os.path.dirname(path), ".lint")
    if not os.path.exists(lint):
        return {}
    with open(lint) as f:
        return (yaml.safe_load(f) or {}).get("exclusions", {}) or {}


def apply_exclusions(violations, exclusions, dashboard_title):
    """Drop excluded violations; report exclusions without a reason or that match nothing."""
    kept, used, errors = [], set(), []
    for rule, spec in exclusions.items():
        if not (spec or {}).get("reason"):
            errors.append(("lint-exclusion", None, None, f"the exclusion of {rule} gives no reason"))
    for v in violations:
        rule, panel, idx, _ = v
        spec = exclusions.get(rule)
        hit = None
        if spec is not None:
            entries = spec.get("entries")
            if not entries:
                hit = (rule, None)
            for n, e in enumerate(entries or []):
                if ((e.get("dashboard") in (None, dashboard_title)) and e.get("panel") in (None, panel)
                        and e.get("targetIdx") in (None, idx)):
                    hit = (rule, n)
                    break
        if hit:
            used.add(hit)
        else:
            kept.append(v)
    for rule, spec in exclusions.items():
        entries = (spec or {}).get("entries") or [None]
        for n, e in enumerate(entries):
            if (rule, None if e is None else n) not in used:
                errors.append(("lint-exclusion", None, None, f"the exclusion of {rule} {e or ''} matches nothing: remove it"))
    return kept + errors


def lint_file(path):
    with open(path) as f:
        d = json.load(f)
    return apply_exclusions(lint_dashboard(d), load_exclusions(path), d.get("title")), d


def show(violations):
    for rule, panel, idx, message in violations:
        where = f"panel {panel!r}" + (f" target {idx}" if idx is not None else "") if panel is not None else "dashboard"
        print(f"{rule}: {where}: {message}")


def self_test():
    """Each broken copy must fail with the rule named; the shipped one must pass."""
    path = os.path.join(DASHBOARDS, "polo-system-status.json")
    with open(path) as f:
        good = json.load(f)
    exclusions = load_exclusions(path)

    def panel(d, title):
        return next(p for p in d["panels"] if p.get("title") == title)

    def mutate(fn):
        d = copy.deepcopy(good)
        fn(d)
        return d

    cases = {
        "panel-units-rule": lambda d: panel(d, "Disk used")["fieldConfig"]["defaults"].pop("unit"),
        "panel-units-rule ": lambda d: panel(d, "Disk used")["fieldConfig"]["defaults"].update(unit="percentage"),
        "panel-title-description-rule": lambda d: panel(d, "Queue depth").update(description=""),
        "panel-datasource-rule": lambda d: panel(d, "Queue depth").update(datasource={"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}),
        "target-job-rule": lambda d: panel(d, "Queue depth")["targets"][0].update(
            expr=panel(d, "Queue depth")["targets"][0]["expr"].replace('job=~"$job",', "")),
        "target-instance-rule": lambda d: panel(d, "Duration p95")["targets"][0].update(
            expr=panel(d, "Duration p95")["targets"][0]["expr"].replace(',instance=~"$instance"', "")),
        "target-rate-interval-rule": lambda d: panel(d, "Errors and rows read")["targets"][0].update(
            expr=panel(d, "Errors and rows read")["targets"][0]["expr"].replace("$__rate_interval", "5m")),
        "target-counter-agg-rule": lambda d: panel(d, "Errors and rows read")["targets"][1].update(
            expr='sum by (source) (polo_exporter_clickhouse_read_rows_total{job=~"$job",instance=~"$instance"})'),
        "target-promql-rule": lambda d: panel(d, "Queue depth")["targets"][0].update(expr="sum by (queue (polo_sqs_messages_visible)"),
        "template-job-rule": lambda d: d["templating"].update(list=[v for v in d["templating"]["list"] if v["name"] != "job"]),
        "template-instance-rule": lambda d: next(v for v in d["templating"]["list"] if v["name"] == "instance")["query"].update(
            query="label_values(polo_exporter_build_info, instance)"),
        "template-datasource-rule": lambda d: d["templating"].update(list=[v for v in d["templating"]["list"] if v["name"] != "datasource"]),
        "template-label-promql-rule": lambda d: next(v for v in d["templating"]["list"] if v["name"] == "collector")["query"].update(
            query="label_values(polo_collector_expected_interval_seconds{instance=~}, collector)"),
    }
    failures = []
    got = apply_exclusions(lint_dashboard(good), exclusions, good.get("title"))
    if got:
        failures.append(f"the shipped dashboard has violations: {got}")
    for rule, fn in cases.items():
        violations = apply_exclusions(lint_dashboard(mutate(fn)), exclusions, good.get("title"))
        rules = {v[0] for v in violations}
        if rule.strip() not in rules:
            failures.append(f"{rule.strip()}: the broken copy passed (violations: {sorted(rules) or 'none'})")
        else:
            print(f"ok   {rule.strip()} catches its broken copy: {next(v[3] for v in violations if v[0] == rule.strip())}")
    # A stale exclusion (the excluded query fixed) is itself an error.
    stale = copy.deepcopy(exclusions)
    stale["target-job-rule"] = {"reason": "test", "entries": [{"panel": "Queue depth", "targetIdx": 0}]}
    if not any(v[0] == "lint-exclusion" for v in apply_exclusions(lint_dashboard(good), stale, good.get("title"))):
        failures.append("a stale exclusion was not reported")
    if failures:
        print("\n".join(failures))
        return 1
    print(f"self-test: {len(cases)} broken copies each failed with their rule")
    return 0


def main(argv):
    if argv == ["--self-test"]:
        return self_test()
    paths = argv or sorted(glob.glob(os.path.join(DASHBOARDS, "*.json")))
    bad = 0
    for path in paths:
        violations, d = lint_file(path)
        queries = sum(len(p.get("targets", [])) for p in d.get("panels", []))
        if violations:
            print(f"{os.path.relpath(path, ROOT)}:")
            show(violations)
            bad += 1
        else:
            print(f"{os.path.relpath(path, ROOT)}: {len(d.get('panels', []))} panels, {queries} queries parsed, dashboard-linter rules pass")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
