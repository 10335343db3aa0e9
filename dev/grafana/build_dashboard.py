#!/usr/bin/env python3
"""Writes deploy/grafana/dashboards/polo-system-status.json, the Grafana stand-in for Polo's
System Status page. Edit this file, run it, commit both; dev/checks/dashboard.py checks the
JSON offline (scripts/test)."""

import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "deploy", "grafana", "dashboards", "polo-system-status.json")
DS = {"type": "prometheus", "uid": "${datasource}"}

# Collector health is not restated here: the card computes it from the thresholds the exporter
# exports (polo_collector_late_threshold_seconds, polo_collector_stale_threshold_seconds), as the
# status document and PoloCollectorStale do, into a state: 0 healthy, 1 late, 2 stale.
HEALTH_LATE, HEALTH_STALE = 1, 2
# Threshold values shared with deploy/prometheus/rules/polo.rules.yml (checked by dev/checks/dashboard.py).
DISK_USED = 0.8  # PoloClickHouseDiskAlmostFull
P95_SECONDS = 5  # PoloClickHouseQueryLatencyHigh
PARTS = 300  # PoloClickHouseTooManyParts
OLDEST_MESSAGE = 1800  # PoloSqsOldestMessageTooOld
BACKLOG = 1000  # PoloSqsBacklog

_next_id = [0]


def steps(*pairs):
    """Threshold steps: a base colour, then (value, colour) pairs."""
    out = [{"color": pairs[0], "value": None}]
    out += [{"color": c, "value": v} for v, c in pairs[1:]]
    return {"mode": "absolute", "steps": out}


def target(expr, legend="", instant=False, fmt="time_series", ref="A"):
    t = {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref}
    if instant:
        t.update({"instant": True, "range": False})
    if fmt != "time_series":
        t["format"] = fmt
    return t


def panel(kind, title, description, targets, x, y, w, h, unit, thresholds=None, **extra):
    _next_id[0] += 1
    defaults = {"unit": unit}
    if "mappings" in extra:
        defaults["mappings"] = extra.pop("mappings")
    if thresholds:
        defaults["thresholds"] = thresholds
        defaults["color"] = {"mode": "thresholds"}
    p = {
        "id": _next_id[0],
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": extra.pop("overrides", [])},
        "options": extra.pop("options", {}),
    }
    p.update(extra)
    return p


def row(title, y):
    _next_id[0] += 1
    return {"id": _next_id[0], "type": "row", "title": title, "collapsed": False, "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "panels": []}


def health_state(sel, match):
    """The worst key's health state: 1 for past the late threshold, 1 more for past the stale one."""
    age = f"collector:polo_collector_success_age_seconds:as_of_read{{{sel},{match}}}"
    return (f"max((({age} > bool on (instance, job, collector) group_left() polo_collector_late_threshold_seconds) "
            f"+ ({age} > bool on (instance, job, collector) group_left() polo_collector_stale_threshold_seconds)))")


def build():
    sel = 'instance=~"$instance"'
    panels = []
    y = 0
    panels.append(row("Collectors", y)); y += 1
    panels.append(panel(
        "stat", "$collector",
        "One card per collector (repeated by the collector variable). Colour: the health of its worst key, from the "
        "thresholds the exporter exports (the same as the status page and the stale alerts use): green = healthy (last "
        "success within one expected interval), amber = late, red = stale (older than staleness factor × the interval). "
        "Also shown: time since the last run, the latest run's duration and events.",
        [
            target(health_state(sel, 'collector="$collector"'), "health", True, ref="A"),
            target(f'time() - max(polo_collector_last_run_timestamp_seconds{{{sel},collector="$collector"}})', "since last run", True, ref="B"),
            target(f'max(polo_collector_last_run_duration_seconds{{{sel},collector="$collector"}})', "duration", True, ref="C"),
            target(f'sum(polo_collector_last_run_events{{{sel},collector="$collector"}})', "events", True, ref="D"),
        ],
        0, y, 6, 5, "none", steps("green", (HEALTH_LATE, "orange"), (HEALTH_STALE, "red")),
        repeat="collector", repeatDirection="h", maxPerRow=4,
        mappings=[{"type": "value", "options": {"0": {"text": "healthy"}, "1": {"text": "late"}, "2": {"text": "stale"}}}],
        options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "background", "graphMode": "none", "textMode": "value_and_name", "orientation": "horizontal"},
        overrides=[
            {"matcher": {"id": "byFrameRefID", "options": "B"}, "properties": [{"id": "unit", "value": "s"}, {"id": "color", "value": {"mode": "fixed", "fixedColor": "text"}}]},
            {"matcher": {"id": "byFrameRefID", "options": "C"}, "properties": [{"id": "unit", "value": "s"}, {"id": "color", "value": {"mode": "fixed", "fixedColor": "text"}}]},
            {"matcher": {"id": "byFrameRefID", "options": "D"}, "properties": [{"id": "unit", "value": "short"}, {"id": "color", "value": {"mode": "fixed", "fixedColor": "text"}}]},
        ],
    )); y += 5
    panels.append(panel(
        "table", "Last errors",
        "Keys whose latest run did not succeed, with the error text (polo_collector_last_error_info) and the failure streak.",
        [
            target(f'polo_collector_last_error_info{{{sel}}} == 1', "", True, "table", "A"),
            target(f'polo_collector_consecutive_failures{{{sel}}} > 0', "", True, "table", "B"),
        ],
        0, y, 16, 8, "short",
        transformations=[
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {"excludeByName": {"Time": True, "__name__": True, "job": True, "Value #A": True}, "renameByName": {"Value #B": "consecutive failures"}}},
        ],
    ))
    panels.append(panel(
        "timeseries", "Collector failures (7 days)",
        "Failed runs per collector in each interval (polo_collector_runs_total{status=\"failed\"}), over the last 7 days: the error-rate sparkline of the status page.",
        [target(f'sum by (collector) (increase(polo_collector_runs_total{{{sel},status="failed"}}[$__rate_interval]))', "{{collector}}")],
        16, y, 8, 8, "short", timeFrom="7d",
        options={"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
    )); y += 8
    panels.append(panel(
        "state-timeline", "Dependencies ready",
        "polo_collector_dependencies_ready: 1 when every collector the collector depends on succeeded within its window.",
        [target(f'polo_collector_dependencies_ready{{{sel}}}', "{{collector}}")],
        0, y, 24, 4, "bool_yes_no", steps("red", (1, "green")),
    )); y += 4

    panels.append(row("Accounts", y)); y += 1
    panels.append(panel(
        "stat", "Accounts by status",
        "polo_accounts: accounts in polo.aws_accounts by polo_status; no_access and pending_setup turn red when above 0.",
        [target(f'sum by (status) (polo_accounts{{{sel}}})', "{{status}}", True)],
        0, y, 8, 6, "short",
        options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "background", "graphMode": "none", "textMode": "value_and_name"},
        overrides=[
            {"matcher": {"id": "byName", "options": s}, "properties": [{"id": "thresholds", "value": steps("green", (1, "red"))}]}
            for s in ("no_access", "pending_setup")
        ] + [{"matcher": {"id": "byName", "options": "active"}, "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": "green"}}]}],
    ))
    panels.append(panel(
        "table", "Accounts",
        "Every account (polo_account_info) with its status, name and the time of its latest successful scan; no_access and pending_setup rows in red.",
        [
            target(f'polo_account_info{{{sel}}}', "", True, "table", "A"),
            target(f'polo_account_last_scan_timestamp_seconds{{{sel}}} * 1000', "", True, "table", "B"),
        ],
        8, y, 16, 6, "short",
        transformations=[
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {"excludeByName": {"Time": True, "__name__": True, "job": True, "instance": True, "Value #A": True}, "renameByName": {"Value #B": "last successful scan"}}},
        ],
        overrides=[
            {"matcher": {"id": "byName", "options": "status"}, "properties": [
                {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                {"id": "mappings", "value": [{"type": "value", "options": {
                    "no_access": {"color": "red", "index": 0}, "pending_setup": {"color": "red", "index": 1}, "active": {"color": "green", "index": 2}}}]},
            ]},
            {"matcher": {"id": "byName", "options": "last successful scan"}, "properties": [{"id": "unit", "value": "dateTimeFromNow"}]},
        ],
    )); y += 6

    panels.append(row("ClickHouse", y)); y += 1
    panels.append(panel(
        "gauge", "Disk used",
        "Used share of each ClickHouse disk (1 - free / total); PoloClickHouseDiskAlmostFull fires above 80%.",
        [target(f'disk:polo_clickhouse_disk_used:ratio{{{sel}}}', "{{replica}} {{disk}}", True)],
        0, y, 6, 7, "percentunit", steps("green", (DISK_USED, "red")),
        options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "showThresholdMarkers": True},
    ))
    panels.append(panel(
        "timeseries", "Query latency p50 / p95 / p99",
        "Quantiles of finished queries' durations over 5 minutes (system.query_log, the exporter's own excluded); PoloClickHouseQueryLatencyHigh fires when p95 stays above 5 s.",
        [
            target(f'replica:polo_clickhouse_query_duration_seconds:p50_rate5m{{{sel}}}', "p50 {{replica}}", ref="A"),
            target(f'replica:polo_clickhouse_query_duration_seconds:p95_rate5m{{{sel}}}', "p95 {{replica}}", ref="B"),
            target(f'replica:polo_clickhouse_query_duration_seconds:p99_rate5m{{{sel}}}', "p99 {{replica}}", ref="C"),
        ],
        6, y, 10, 7, "s", steps("green", (P95_SECONDS, "red")),
        options={"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        overrides=[],
    ))
    panels.append(panel(
        "stat", "Active queries",
        "Initial queries running now on each node (system.processes), the exporter's own excluded.",
        [target(f'sum by (replica) (polo_clickhouse_active_queries{{{sel}}})', "{{replica}}")],
        16, y, 4, 7, "short",
        options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "graphMode": "area"},
    ))
    panels.append(panel(
        "bargauge", "Most parts in one partition",
        "polo_clickhouse_table_max_parts_in_partition per table; PoloClickHouseTooManyParts fires above 300.",
        [target(f'max by (database, table) (polo_clickhouse_table_max_parts_in_partition{{{sel}}})', "{{database}}.{{table}}", True)],
        20, y, 4, 7, "short", steps("green", (PARTS, "red")),
        options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "orientation": "horizontal"},
    )); y += 7
    panels.append(panel(
        "timeseries", "Queries per second and failures",
        "Finished queries per second by kind, and failed queries per second by class of exception code.",
        [
            target(f'sum by (query_kind) (rate(polo_clickhouse_query_duration_seconds_count{{{sel}}}[$__rate_interval]))', "{{query_kind}}", ref="A"),
            target(f'sum by (class) (rate(polo_clickhouse_failed_queries_total{{{sel}}}[$__rate_interval]))', "failed: {{class}}", ref="B"),
        ],
        0, y, 24, 6, "reqps",
    )); y += 6

    panels.append(row("SQS", y)); y += 1
    panels.append(panel(
        "timeseries", "Queue depth",
        "Visible messages of Polo's queues (approximate, SQS API); PoloSqsBacklog fires above 1000 for 30 minutes.",
        [target(f'polo_sqs_messages_visible{{{sel},dead_letter="false"}}', "{{queue}} ({{region}})")],
        0, y, 10, 7, "short", steps("green", (BACKLOG, "red")),
    ))
    panels.append(panel(
        "stat", "Dead-letter queue depth",
        "Visible messages in each dead-letter queue; should be 0. Red above 0 (PoloDeadLetterQueueNotEmpty).",
        [target(f'polo_sqs_messages_visible{{{sel},dead_letter="true"}}', "{{queue}}", True)],
        10, y, 6, 7, "short", steps("green", (1, "red")),
        options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "background", "graphMode": "none"},
    ))
    panels.append(panel(
        "timeseries", "Oldest message age",
        "Age of the oldest message (CloudWatch ApproximateAgeOfOldestMessage, latest complete period); PoloSqsOldestMessageTooOld fires above 30 minutes.",
        [target(f'polo_sqs_oldest_message_age_seconds{{{sel}}}', "{{queue}}")],
        16, y, 8, 7, "s", steps("green", (OLDEST_MESSAGE, "red")),
    )); y += 7

    panels.append(row("Lambdas", y)); y += 1
    panels.append(panel(
        "timeseries", "Invocations, errors, throttles",
        "Per Polo Lambda, in the latest complete CloudWatch period (CloudWatch Sum).",
        [
            target(f'polo_lambda_invocations{{{sel}}}', "invocations {{function}}", ref="A"),
            target(f'polo_lambda_errors{{{sel}}}', "errors {{function}}", ref="B"),
            target(f'polo_lambda_throttles{{{sel}}}', "throttles {{function}}", ref="C"),
        ],
        0, y, 12, 7, "short",
    ))
    panels.append(panel(
        "timeseries", "Duration p95",
        "p95 duration of each Polo Lambda in the latest complete CloudWatch period.",
        [target(f'polo_lambda_duration_p95_seconds{{{sel}}}', "{{function}}")],
        12, y, 12, 7, "s",
    )); y += 7

    panels.append(row("Polo's own cost", y)); y += 1
    panels.append(panel(
        "stat", "Month to date and forecast",
        "Cost of the resources tagged polo:purpose=polo-infrastructure (Cost Explorer, source aws_cost, fetched a few "
        "times a day): month to date, the month-end forecast from the daily run rate, and the configured budget. "
        "The forecast turns red above the budget (PoloOwnCostOverBudget).",
        [
            target(f'sum(polo_own_cost_month_to_date_usd{{{sel}}})', "month to date", True, ref="A"),
            target(f'sum(polo_own_cost_month_end_forecast_usd{{{sel}}})', "forecast", True, ref="B"),
            target(f'sum(polo_own_cost_budget_usd{{{sel}}})', "budget", True, ref="C"),
        ],
        0, y, 8, 6, "currencyUSD",
        options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "value", "graphMode": "none", "textMode": "value_and_name"},
    ))
    panels.append(panel(
        "bargauge", "Last complete day by service",
        "polo_own_cost_last_day_by_service_usd: what each AWS service of Polo's own infrastructure cost on the last complete day.",
        [target(f'sort_desc(sum by (service) (polo_own_cost_last_day_by_service_usd{{{sel}}}))', "{{service}}", True)],
        8, y, 10, 6, "currencyUSD",
        options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "orientation": "horizontal", "displayMode": "basic"},
    ))
    panels.append(panel(
        "stat", "Cost data",
        "polo_own_cost_data_available: 1 if Cost Explorer returned cost for the tag; 0 means the tag is not activated as a "
        "cost-allocation tag (or nothing is tagged), so no cost is shown rather than a false 0. Also: what the cost source's "
        "own requests cost (polo_exporter_aws_request_cost_usd_total).",
        [
            target(f'min(polo_own_cost_data_available{{{sel}}})', "data available", True, ref="A"),
            target(f'sum(polo_exporter_aws_request_cost_usd_total{{{sel},source="aws_cost"}})', "requests cost", True, ref="B"),
        ],
        18, y, 6, 6, "short", steps("red", (1, "green")),
        options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "value", "graphMode": "none", "textMode": "value_and_name"},
        overrides=[{"matcher": {"id": "byFrameRefID", "options": "B"}, "properties": [{"id": "unit", "value": "currencyUSD"}, {"id": "color", "value": {"mode": "fixed", "fixedColor": "text"}}]}],
    )); y += 6

    panels.append(row("Exporter", y)); y += 1
    panels.append(panel(
        "state-timeline", "Sources up",
        "polo_exporter_source_up: 1 when the source's latest attempt succeeded. While a source is down its series are served from its last good read.",
        [target(f'polo_exporter_source_up{{{sel}}}', "{{source}}")],
        0, y, 12, 6, "bool_yes_no", steps("red", (1, "green")),
    ))
    panels.append(panel(
        "timeseries", "Source durations",
        "How long each source's latest attempt took (polo_exporter_source_duration_seconds), and Prometheus's own scrape duration.",
        [
            target(f'polo_exporter_source_duration_seconds{{{sel}}}', "{{source}}", ref="A"),
            target(f'scrape_duration_seconds{{{sel},job=~"$job"}}', "scrape {{instance}}", ref="B"),
        ],
        12, y, 6, 6, "s",
    ))
    panels.append(panel(
        "timeseries", "Errors and rows read",
        "Failed source attempts per second by kind, and rows ClickHouse read per second for each source.",
        [
            target(f'sum by (source, kind) (rate(polo_exporter_source_errors_total{{{sel}}}[$__rate_interval]))', "errors {{source}} {{kind}}", ref="A"),
            target(f'sum by (source) (rate(polo_exporter_clickhouse_read_rows_total{{{sel}}}[$__rate_interval]))', "rows read {{source}}", ref="B"),
        ],
        18, y, 6, 6, "short",
    )); y += 6

    return {
        "id": None,
        "uid": "polo-system-status",
        "title": "Polo System Status",
        "description": "Polo's operational health: collectors, account coverage, ClickHouse, SQS, Lambdas and the exporter itself (polo-exporter).",
        "tags": ["polo", "polo-exporter"],
        "timezone": "browser",
        "editable": False,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "links": [{"title": "Runbooks", "type": "link", "url": "https://github.com/polo/polo-exporter/blob/main/docs/runbooks.md", "targetBlank": True}],
        "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"}]},
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus", "current": {}, "hide": 0, "refresh": 1},
            {"name": "job", "label": "Job", "type": "query", "datasource": DS, "query": {"query": "label_values(polo_exporter_build_info, job)", "refId": "job"},
             "definition": "label_values(polo_exporter_build_info, job)", "includeAll": True, "multi": True, "current": {}, "refresh": 2, "hide": 0},
            {"name": "instance", "label": "Exporter", "type": "query", "datasource": DS,
             "query": {"query": 'label_values(polo_exporter_build_info{job=~"$job"}, instance)', "refId": "instance"},
             "definition": 'label_values(polo_exporter_build_info{job=~"$job"}, instance)', "includeAll": True, "multi": True, "current": {}, "refresh": 2, "hide": 0},
            {"name": "collector", "label": "Collector", "type": "query", "datasource": DS,
             "query": {"query": 'label_values(polo_collector_expected_interval_seconds{instance=~"$instance"}, collector)', "refId": "collector"},
             "definition": 'label_values(polo_collector_expected_interval_seconds{instance=~"$instance"}, collector)', "includeAll": True, "multi": True, "current": {}, "refresh": 2, "hide": 0},
        ]},
        "panels": panels,
    }


if __name__ == "__main__":
    with open(OUT, "w") as f:
        json.dump(build(), f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {OUT}")
