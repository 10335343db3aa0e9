"""Scenario files of scripts/simulate: parsing and validation (docs/simulate.md has the format).

A scenario is data: the shape of a production-like Polo (collectors with their production
intervals, accounts, regions), a compression factor `time_scale`, and incidents with the
notification each must cause (`expect`: page, chat or none). Times (`start_s`, `end_s`,
`duration_s`) are seconds of the run, wall clock; intervals and delays are production durations.
"""

import re

import yaml

KINDS = {
    # kind: (keys it needs beyond start_s/end_s/expect, keys it may have)
    "collector_stops": ({"collector"}, set()),
    "collector_fails": ({"collector"}, {"accounts", "status"}),
    "collector_silent": ({"collector"}, {"accounts"}),
    "account_loses_access": ({"account"}, set()),
    "dlq_fills": (set(), {"messages", "queue"}),
    "clickhouse_down": (set(), set()),
    "exporter_restart": (set(), set()),
    "late_rows": ({"collector", "delay"}, set()),
}
EXPECTS = ("page", "chat", "none")
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ScenarioError(ValueError):
    pass


def seconds(text, where):
    """A Prometheus-style duration (`15m`, `1h30m`, `90s`) or a number of seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)", str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        raise ScenarioError(f"{where}: {text!r} is not a duration such as 15m or 1h30m")
    return sum(float(n) * UNITS[u] for n, u in parts)


def load(path):
    with open(path) as f:
        raw = yaml.safe_load(f)
    return parse(raw, path)


def parse(raw, path="scenario"):
    if not isinstance(raw, dict):
        raise ScenarioError(f"{path}: a scenario is a mapping (name, duration_s, time_scale, shape, incidents)")
    unknown = set(raw) - {"name", "duration_s", "time_scale", "shape", "incidents", "seed"}
    if unknown:
        raise ScenarioError(f"{path}: unknown keys {sorted(unknown)}")
    for key in ("name", "duration_s", "time_scale", "shape"):
        if key not in raw:
            raise ScenarioError(f"{path}: `{key}` is required")
    scale = float(raw["time_scale"])
    if not 1 <= scale <= 3600:
        raise ScenarioError(f"{path}: time_scale must be between 1 and 3600")
    shape = raw["shape"]
    if not isinstance(shape, dict) or not shape.get("collectors"):
        raise ScenarioError(f"{path}: shape.collectors must map collector names to production intervals")
    collectors = {name: seconds(v, f"shape.collectors.{name}") for name, v in shape["collectors"].items()}
    for name, interval in collectors.items():
        if interval / scale < 2:
            raise ScenarioError(f"{path}: shape.collectors.{name}: {interval:g}s / time_scale {scale:g} is under 2 s of the run; "
                                "lower time_scale")
    accounts = int(shape.get("accounts", 10))
    regions = list(shape.get("regions", ["us-east-1"]))
    if accounts < 1 or not regions:
        raise ScenarioError(f"{path}: shape needs at least one account and one region")
    duration = float(raw["duration_s"])
    incidents = []
    for i, inc in enumerate(raw.get("incidents") or []):
        where = f"{path}: incidents[{i}]"
        if not isinstance(inc, dict) or inc.get("kind") not in KINDS:
            raise ScenarioError(f"{where}: kind must be one of {sorted(KINDS)}")
        needs, may = KINDS[inc["kind"]]
        allowed = {"kind", "start_s", "end_s", "expect", "name", "page_alerts"} | needs | may
        if set(inc) - allowed:
            raise ScenarioError(f"{where}: unknown keys {sorted(set(inc) - allowed)} for {inc['kind']}")
        for key in needs | {"start_s", "expect"}:
            if key not in inc:
                raise ScenarioError(f"{where}: `{key}` is required for {inc['kind']}")
        if inc["expect"] not in EXPECTS:
            raise ScenarioError(f"{where}: expect must be one of {EXPECTS}")
        page_alerts = inc.get("page_alerts", [])
        if page_alerts and (inc["expect"] != "page" or not isinstance(page_alerts, list)
                            or not all(isinstance(a, str) and a for a in page_alerts)):
            raise ScenarioError(f"{where}: page_alerts is a list of alert names, for expect: page only")
        start = float(inc["start_s"])
        end = float(inc.get("end_s", start))
        if not 0 <= start <= end <= duration:
            raise ScenarioError(f"{where}: need 0 <= start_s <= end_s <= duration_s")
        if "collector" in inc and inc["collector"] not in collectors:
            raise ScenarioError(f"{where}: collector {inc['collector']!r} is not in shape.collectors")
        if "account" in inc and not 0 <= int(inc["account"]) < accounts:
            raise ScenarioError(f"{where}: account must be an index below shape.accounts ({accounts})")
        status = inc.get("status", "failed")
        if status not in ("failed", "partial"):
            raise ScenarioError(f"{where}: status must be failed or partial")
        incidents.append({
            "index": i,
            "name": inc.get("name") or f"{i}:{inc['kind']}",
            "kind": inc["kind"],
            "start_s": start,
            "end_s": end,
            "expect": inc["expect"],
            "collector": inc.get("collector"),
            "accounts": int(inc["accounts"]) if "accounts" in inc else None,
            "account": int(inc["account"]) if "account" in inc else None,
            "status": status,
            "delay": seconds(inc["delay"], f"{where}.delay") if "delay" in inc else 0.0,
            "messages": int(inc.get("messages", 5)),
            "queue": inc.get("queue", "polo-events-dlq"),
            "page_alerts": sorted(page_alerts),
        })
    return {
        "name": str(raw["name"]),
        "duration_s": duration,
        "time_scale": scale,
        "collectors": collectors,
        "accounts": [account_id(i) for i in range(accounts)],
        "regions": regions,
        "incidents": incidents,
        "seed": int(raw.get("seed", 1)),
    }


def account_id(i):
    """accounts[i]: 12 digits, as AWS account ids are."""
    return f"{100000000000 + i:012d}"
