#!/usr/bin/env python3
"""Writes deploy/grafana/dashboards/polo-system-status.json, the Grafana stand-in for Polo's
System Status page, with Grafana's foundation SDK (PyPI grafana-foundation-sdk, pinned in
dev/grafana/requirements.txt): typed builders for the dashboard, its panels, variables and
Prometheus queries. Edit this file, run it (`.venv/bin/python dev/grafana/build_dashboard.py`),
commit both; dev/checks/dashboard.py and dev/checks/dashboard_lint.py check the JSON offline,
dev/checks/dashboard_queries.py on a real Prometheus (scripts/check-deploy).

`--check`: exit 1 if the committed JSON differs from what this file builds."""

import json
import os
import sys

from grafana_foundation_sdk.builders import bargauge, dashboard, gauge, prometheus, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "deploy", "grafana", "dashboards", "polo-system-status.json")
DS = model.DataSourceRef(type_val="prometheus", uid="${datasource}")

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

# Every query is filtered by the job and instance variables (dashboard-linter's
# target-job-rule and target-instance-rule).
SEL = 'job=~"$job",instance=~"$instance"'

_next_id = [0]


def next_id():
    _next_id[0] += 1
    return _next_id[0]


def steps(*pairs):
    """Threshold steps: a base colour, then (value, colour) pairs."""
    out = [model.Threshold(value=None, color=pairs[0])]
    out += [model.Threshold(value=v, color=c) for v, c in pairs[1:]]
    return dashboard.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(out)


def target(expr, legend="", instant=False, fmt=None, ref="A"):
    q = prometheus.Dataquery().datasource(DS).expr(expr).legend_format(legend).ref_id(ref)
    if instant:
        q = q.instant()
    if fmt == "table":
        q = q.format(PromQueryFormat.TABLE)
    return q


def reduce_last():
    return common_builders.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False)


def legend_list():
    return common_builders.VizLegendOptions().display_mode(common.LegendDisplayMode.LIST).placement(
        common.LegendPlacement.BOTTOM).show_legend(True)


def tooltip_multi():
    return common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI)


def fixed(colour):
    return model.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": colour})


def by_query(ref, unit):
    return model.MatcherConfig(id_val="byFrameRefID", options=ref), [model.DynamicConfigValue(id_val="unit", value=unit), fixed("text")]


def value_text(**texts):
    return model.ValueMap(options={k: model.ValueMappingResult(text=v) for k, v in texts.items()})


def panel(builder, title, description, targets, x, y, w, h, unit, thresholds=None):
    """What every panel has: id, title, description, the datasource variable, position, queries, unit."""
    p = (builder.id(next_id()).title(title).description(description).datasource(DS)
         .grid_pos(model.GridPos(x=x, y=y, w=w, h=h)).targets(targets).unit(unit))
    if thresholds:
        p = p.thresholds(thresholds).color_scheme(dashboard.FieldColor().mode(model.FieldColorModeId.THRESHOLDS))
    return p


def row(title, y):
    return dashboard.Row(title).id(next_id()).collapsed(False).grid_pos(model.GridPos(x=0, y=y, w=24, h=1))


def health_state(match):
    """The worst key's health state: 1 for past the late threshold, 1 more for past the stale one."""
    age = f"collector:polo_collector_success_age_seconds:as_of_read{{{SEL},{match}}}"
    late = f"polo_collector_late_threshold_seconds{{{SEL}}}"
    stale = f"polo_collector_stale_threshold_seconds{{{SEL}}}"
    return (f"max((({age} > bool on (instance, job, collector) group_left() {late}) "
            f"+ ({age} > bool on (instance, job, collector) group_left() {stale})))")


def variable(name, label, query):
    return (dashboard.QueryVariable(name).label(label).datasource(DS).query({"query": query, "refId": name})
            .include_all(True).multi(True).refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED).hide(model.VariableHide.DONT_HIDE))


def build():
    d = (dashboard.Dashboard("Polo System Status")
         .uid("polo-system-status")
         .description("Polo's operational health: collectors, account coverage, ClickHouse, SQS, Lambdas and the exporter itself (polo-exporter).")
         .tags(["polo", "polo-exporter"])
         .timezone("browser")
         .readonly()
         .tooltip(model.DashboardCursorSync.CROSSHAIR)
         .refresh("30s")
         .version(1)
         .time("now-6h", "now")
         .link(dashboard.DashboardLink("Runbooks").type(model.DashboardLinkType.LINK)
               .url("https://github.com/polo/polo-exporter/blob/main/docs/runbooks.md").target_blank(True))
         .with_variable(dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")
                        .hide(model.VariableHide.DONT_HIDE).include_all(False).multi(False))
         .with_variable(variable("job", "Job", "label_values(polo_exporter_build_info, job)"))
         .with_variable(variable("instance", "Exporter", 'label_values(polo_exporter_build_info{job=~"$job"}, instance)'))
         .with_variable(variable("collector", "Collector",
                                 'label_values(polo_collector_expected_interval_seconds{job=~"$job",instance=~"$instance"}, collector)')))

    panels = []
    y = 0
    panels.append(row("Collectors", y)); y += 1
    panels.append(panel(
        stat.Panel(), "$collector",
        "One card per collector (repeated by the collector variable). Colour: the health of its worst key, from the "
        "thresholds the exporter exports (the same as the status page and the stale alerts use): green = healthy (last "
        "success within one expected interval), amber = late, red = stale (older than staleness factor × the interval). "
        "Also shown: time since the last run, the latest run's duration and events.",
        [
            target(health_state('collector="$collector"'), "health", True, ref="A"),
            target(f'time() - max(polo_collector_last_run_timestamp_seconds{{{SEL},collector="$collector"}})', "since last run", True, ref="B"),
            target(f'max(polo_collector_last_run_duration_seconds{{{SEL},collector="$collector"}})', "duration", True, ref="C"),
            target(f'sum(polo_collector_last_run_events{{{SEL},collector="$collector"}})', "events", True, ref="D"),
        ],
        0, y, 6, 5, "none", steps("green", (HEALTH_LATE, "orange"), (HEALTH_STALE, "red")))
        .repeat("collector").repeat_direction("h").max_per_row(4)
        .mappings([value_text(**{"0": "healthy", "1": "late", "2": "stale"})])
        .reduce_options(reduce_last()).color_mode(common.BigValueColorMode.BACKGROUND).graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME).orientation(common.VizOrientation.HORIZONTAL)
        .with_override(*by_query("B", "s")).with_override(*by_query("C", "s")).with_override(*by_query("D", "short")))
    y += 5
    panels.append(panel(
        table.Panel(), "Last errors",
        "Keys whose latest run did not succeed, with the error text (polo_collector_last_error_info) and the failure streak.",
        [
            target(f'polo_collector_last_error_info{{{SEL}}} == 1', "", True, "table", "A"),
            target(f'polo_collector_consecutive_failures{{{SEL}}} > 0', "", True, "table", "B"),
        ],
        0, y, 16, 8, "short")
        .transformations([
            model.DataTransformerConfig(id_val="merge", options={}),
            model.DataTransformerConfig(id_val="organize", options={
                "excludeByName": {"Time": True, "__name__": True, "job": True, "Value #A": True},
                "renameByName": {"Value #B": "consecutive failures"}}),
        ]))
    panels.append(panel(
        timeseries.Panel(), "Collector failures (7 days)",
        "Failed runs per collector in each interval (polo_collector_runs_total{status=\"failed\"}), over the last 7 days: the error-rate sparkline of the status page.",
        [target(f'sum by (collector) (increase(polo_collector_runs_total{{{SEL},status="failed"}}[$__rate_interval]))', "{{collector}}")],
        16, y, 8, 8, "short")
        .time_from("7d").legend(legend_list()).tooltip(tooltip_multi()))
    y += 8
    panels.append(panel(
        statetimeline.Panel(), "Dependencies ready",
        "polo_collector_dependencies_ready: 1 when every collector the collector depends on succeeded within its window.",
        [target(f'polo_collector_dependencies_ready{{{SEL}}}', "{{collector}}")],
        0, y, 24, 4, "bool_yes_no", steps("red", (1, "green"))))
    y += 4

    # The freshness SLO (docs/slo.md): the exporter's attainment over its window, the objective,
    # and the recording rules of the polo-slo group.
    panels.append(row("Freshness SLO", y)); y += 1
    panels.append(panel(
        table.Panel(), "Attainment against objective",
        "Per collector: the share of key-seconds its keys were fresh over the SLO window (polo_collector_slo_attainment_ratio, "
        "computed by the exporter from the runs in ClickHouse) and its objective (polo_collector_slo_objective_ratio). "
        "Stale means the same as everywhere here: older than staleness factor x the expected interval.",
        [
            target(f'min by (collector) (polo_collector_slo_attainment_ratio{{{SEL}}})', "", True, "table", "A"),
            target(f'min by (collector) (polo_collector_slo_objective_ratio{{{SEL}}})', "", True, "table", "B"),
        ],
        0, y, 8, 8, "percentunit")
        .decimals(3)
        .transformations([
            model.DataTransformerConfig(id_val="merge", options={}),
            model.DataTransformerConfig(id_val="organize", options={
                "excludeByName": {"Time": True},
                "renameByName": {"Value #A": "attainment", "Value #B": "objective"}}),
        ]))
    panels.append(panel(
        bargauge.Panel(), "Error budget remaining",
        "collector:polo_collector_slo_error_budget_remaining:ratio: 1 - (1 - attainment) / (1 - objective) over the SLO window; "
        "below 0 the objective is missed.",
        [target(f'min by (collector) (collector:polo_collector_slo_error_budget_remaining:ratio{{{SEL}}})', "{{collector}}", True)],
        8, y, 8, 8, "percentunit", steps("red", (0, "orange"), (0.25, "green")))
        .min(-1).max(1).reduce_options(reduce_last()).orientation(common.VizOrientation.HORIZONTAL))
    panels.append(panel(
        timeseries.Panel(), "Burn rate",
        "collector:polo_collector_slo_burn_rate over 1h and 6h: the share of stale key-seconds divided by the error budget. "
        "1 spends the budget in exactly the window; PoloCollectorFreshnessBudgetBurn pages above 14.4 (1h) and 6 (6h).",
        [
            target(f'max by (collector) (collector:polo_collector_slo_burn_rate:1h{{{SEL}}})', "{{collector}} 1h", ref="A"),
            target(f'max by (collector) (collector:polo_collector_slo_burn_rate:6h{{{SEL}}})', "{{collector}} 6h", ref="B"),
        ],
        16, y, 8, 8, "none")
        .legend(legend_list()).tooltip(tooltip_multi()))
    y += 8

    panels.append(row("Accounts", y)); y += 1
    panels.append(panel(
        stat.Panel(), "Accounts by status",
        "polo_accounts: accounts in polo.aws_accounts by polo_status; no_access and pending_setup turn red when above 0.",
        [target(f'sum by (status) (polo_accounts{{{SEL}}})', "{{status}}", True)],
        0, y, 8, 6, "short")
        .reduce_options(reduce_last()).color_mode(common.BigValueColorMode.BACKGROUND).graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .override_by_name("no_access", [model.DynamicConfigValue(id_val="thresholds", value=steps("green", (1, "red")).build())])
        .override_by_name("pending_setup", [model.DynamicConfigValue(id_val="thresholds", value=steps("green", (1, "red")).build())])
        .override_by_name("active", [fixed("green")]))
    panels.append(panel(
        table.Panel(), "Accounts",
        "Every account (polo_account_info) with its status, name and the time of its latest successful scan; no_access and pending_setup rows in red.",
        [
            target(f'polo_account_info{{{SEL}}}', "", True, "table", "A"),
            target(f'polo_account_last_scan_timestamp_seconds{{{SEL}}} * 1000', "", True, "table", "B"),
        ],
        8, y, 16, 6, "short")
        .transformations([
            model.DataTransformerConfig(id_val="merge", options={}),
            model.DataTransformerConfig(id_val="organize", options={
                "excludeByName": {"Time": True, "__name__": True, "job": True, "instance": True, "Value #A": True},
                "renameByName": {"Value #B": "last successful scan"}}),
        ])
        .override_by_name("status", [
            model.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-background"}),
            model.DynamicConfigValue(id_val="mappings", value=[model.ValueMap(options={
                "no_access": model.ValueMappingResult(color="red", index=0),
                "pending_setup": model.ValueMappingResult(color="red", index=1),
                "active": model.ValueMappingResult(color="green", index=2)})]),
        ])
        .override_by_name("last successful scan", [model.DynamicConfigValue(id_val="unit", value="dateTimeFromNow")]))
    y += 6

    panels.append(row("ClickHouse", y)); y += 1
    panels.append(panel(
        gauge.Panel(), "Disk used",
        "Used share of each ClickHouse disk (1 - free / total); PoloClickHouseDiskAlmostFull fires above 80%.",
        [target(f'disk:polo_clickhouse_disk_used:ratio{{{SEL}}}', "{{replica}} {{disk}}", True)],
        0, y, 6, 7, "percentunit", steps("green", (DISK_USED, "red")))
        .reduce_options(reduce_last()).show_threshold_markers(True))
    panels.append(panel(
        timeseries.Panel(), "Query latency p50 / p95 / p99",
        "Quantiles of finished queries' durations over 5 minutes (system.query_log, the exporter's own excluded); PoloClickHouseQueryLatencyHigh fires when p95 stays above 5 s.",
        [
            target(f'replica:polo_clickhouse_query_duration_seconds:p50_rate5m{{{SEL}}}', "p50 {{replica}}", ref="A"),
            target(f'replica:polo_clickhouse_query_duration_seconds:p95_rate5m{{{SEL}}}', "p95 {{replica}}", ref="B"),
            target(f'replica:polo_clickhouse_query_duration_seconds:p99_rate5m{{{SEL}}}', "p99 {{replica}}", ref="C"),
        ],
        6, y, 10, 7, "s", steps("green", (P95_SECONDS, "red")))
        .legend(legend_list()).tooltip(tooltip_multi()))
    panels.append(panel(
        stat.Panel(), "Active queries",
        "Initial queries running now on each node (system.processes), the exporter's own excluded.",
        [target(f'sum by (replica) (polo_clickhouse_active_queries{{{SEL}}})', "{{replica}}")],
        16, y, 4, 7, "short")
        .reduce_options(reduce_last()).graph_mode(common.BigValueGraphMode.AREA))
    panels.append(panel(
        bargauge.Panel(), "Most parts in one partition",
        "polo_clickhouse_table_max_parts_in_partition per table; PoloClickHouseTooManyParts fires above 300.",
        [target(f'max by (database, table) (polo_clickhouse_table_max_parts_in_partition{{{SEL}}})', "{{database}}.{{table}}", True)],
        20, y, 4, 7, "short", steps("green", (PARTS, "red")))
        .reduce_options(reduce_last()).orientation(common.VizOrientation.HORIZONTAL))
    y += 7
    panels.append(panel(
        timeseries.Panel(), "Queries per second and failures",
        "Finished queries per second by kind, and failed queries per second by class of exception code.",
        [
            # Classic `_count`, or the native histogram's count when Prometheus scrapes protobuf.
            target(f'sum by (query_kind) (rate(polo_clickhouse_query_duration_seconds_count{{{SEL}}}[$__rate_interval]))'
                   f' or sum by (query_kind) (histogram_count(rate(polo_clickhouse_query_duration_seconds{{{SEL}}}[$__rate_interval])))', "{{query_kind}}", ref="A"),
            target(f'sum by (class) (rate(polo_clickhouse_failed_queries_total{{{SEL}}}[$__rate_interval]))', "failed: {{class}}", ref="B"),
        ],
        0, y, 24, 6, "reqps"))
    y += 6
    panels.append(panel(
        timeseries.Panel(), "Inserts delayed and rejected",
        "INSERTs per second throttled at parts_to_delay_insert and refused at parts_to_throw_insert (system.events); PoloClickHouseInsertsDelayed warns, PoloClickHouseInsertsRejected pages.",
        [
            target(f'sum by (replica) (rate(polo_clickhouse_inserts_delayed_total{{{SEL}}}[$__rate_interval]))', "delayed {{replica}}", ref="A"),
            target(f'sum by (replica) (rate(polo_clickhouse_inserts_rejected_total{{{SEL}}}[$__rate_interval]))', "rejected {{replica}}", ref="B"),
        ],
        0, y, 8, 7, "ops")
        .legend(legend_list()).tooltip(tooltip_multi()))
    panels.append(panel(
        bargauge.Panel(), "Detached parts",
        "Parts the server detached (system.detached_parts, watched databases), by table and reason; parts a user detached are left out. PoloClickHouseDetachedParts fires above 0.",
        [target(f'sum by (database, table, reason) (polo_clickhouse_detached_parts{{{SEL},reason!="detached_by_user"}})', "{{database}}.{{table}} {{reason}}", True)],
        8, y, 5, 7, "short", steps("green", (1, "red")))
        .reduce_options(reduce_last()).orientation(common.VizOrientation.HORIZONTAL))
    panels.append(panel(
        timeseries.Panel(), "Disk free in 24 h (projected)",
        "Free space of each disk a day ahead at the rate of the last 6 hours (predict_linear); PoloClickHouseDiskFullWithinDay fires below 0.",
        [target(f'predict_linear(polo_clickhouse_disk_free_bytes{{{SEL}}}[6h], 86400)', "{{replica}} {{disk}}")],
        13, y, 7, 7, "bytes", steps("red", (0, "green"))))
    panels.append(panel(
        stat.Panel(), "Server uptime",
        "Seconds since each server started (uptime()); PoloClickHouseRestarted (info) below 3 minutes.",
        [target(f'polo_clickhouse_uptime_seconds{{{SEL}}}', "{{replica}}", True)],
        20, y, 4, 7, "s")
        .reduce_options(reduce_last()).graph_mode(common.BigValueGraphMode.NONE))
    y += 7
    panels.append(panel(
        stat.Panel(), "Cluster replicas",
        "Cluster mode: each replica of clickhouse.cluster, up if it answered this scrape's queries; PoloClickHouseReplicaDown fires after 5 minutes down.",
        [target(f'polo_clickhouse_cluster_replica_up{{{SEL}}}', "{{address}}", True)],
        0, y, 6, 7, "short", steps("red", (1, "green")))
        .reduce_options(reduce_last()).color_mode(common.BigValueColorMode.BACKGROUND).graph_mode(common.BigValueGraphMode.NONE)
        .mappings([value_text(**{"0": "down", "1": "up"})]))
    panels.append(panel(
        timeseries.Panel(), "Replication lag and queue",
        "Per node, the largest absolute_delay and queue_size of the watched replicated tables (system.replicas); PoloClickHouseReplicationLag above 300 s, PoloClickHouseReplicationQueueBackingUp above 99 tasks.",
        [
            target(f'max by (replica) (polo_clickhouse_replica_absolute_delay_seconds{{{SEL}}})', "delay s {{replica}}", ref="A"),
            target(f'max by (replica) (polo_clickhouse_replica_queue_size{{{SEL}}})', "queue {{replica}}", ref="B"),
        ],
        6, y, 6, 7, "short")
        .legend(legend_list()).tooltip(tooltip_multi()))
    panels.append(panel(
        timeseries.Panel(), "Keeper",
        "Keeper sessions (1 where replication is configured; PoloClickHouseKeeperSessions above 1), expired sessions of watched tables (PoloClickHouseKeeperSessionExpired) and hardware exceptions per second (PoloClickHouseKeeperErrors).",
        [
            target(f'max by (replica) (polo_clickhouse_keeper_sessions{{{SEL}}})', "sessions {{replica}}", ref="A"),
            target(f'max by (replica) (polo_clickhouse_replica_session_expired{{{SEL}}})', "expired {{replica}}", ref="B"),
            target(f'sum by (replica) (rate(polo_clickhouse_keeper_hardware_exceptions_total{{{SEL}}}[$__rate_interval]))', "exceptions/s {{replica}}", ref="C"),
        ],
        12, y, 6, 7, "short")
        .legend(legend_list()).tooltip(tooltip_multi()))
    panels.append(panel(
        timeseries.Panel(), "Server errors by class",
        "Errors the servers raised per second, every client's (system.errors), by class of exception code; replication errors (failed fetches, failed part checks, lost parts: PoloClickHouseReplicationErrors).",
        [
            target(f'sum by (class) (rate(polo_clickhouse_server_errors_total{{{SEL}}}[$__rate_interval]))', "{{class}}", ref="A"),
            target(f'sum by (replica) (rate(polo_clickhouse_replicated_part_failed_fetches_total{{{SEL}}}[$__rate_interval]) + rate(polo_clickhouse_replicated_part_checks_failed_total{{{SEL}}}[$__rate_interval]) + rate(polo_clickhouse_replicated_data_loss_total{{{SEL}}}[$__rate_interval]))', "replication {{replica}}", ref="B"),
        ],
        18, y, 6, 7, "ops")
        .legend(legend_list()).tooltip(tooltip_multi()))
    y += 7

    panels.append(row("SQS", y)); y += 1
    panels.append(panel(
        timeseries.Panel(), "Queue depth",
        "Visible messages of Polo's queues (approximate, SQS API); PoloSqsBacklog fires above 1000 for 30 minutes.",
        [target(f'polo_sqs_messages_visible{{{SEL},dead_letter="false"}}', "{{queue}} ({{region}})")],
        0, y, 10, 7, "short", steps("green", (BACKLOG, "red"))))
    panels.append(panel(
        stat.Panel(), "Dead-letter queue depth",
        "Visible messages in each dead-letter queue; should be 0. Red above 0 (PoloDeadLetterQueueNotEmpty).",
        [target(f'polo_sqs_messages_visible{{{SEL},dead_letter="true"}}', "{{queue}}", True)],
        10, y, 6, 7, "short", steps("green", (1, "red")))
        .reduce_options(reduce_last()).color_mode(common.BigValueColorMode.BACKGROUND).graph_mode(common.BigValueGraphMode.NONE))
    panels.append(panel(
        timeseries.Panel(), "Oldest message age",
        "Age of the oldest message (CloudWatch ApproximateAgeOfOldestMessage, latest complete period); PoloSqsOldestMessageTooOld fires above 30 minutes.",
        [target(f'polo_sqs_oldest_message_age_seconds{{{SEL}}}', "{{queue}}")],
        16, y, 8, 7, "s", steps("green", (OLDEST_MESSAGE, "red"))))
    y += 7

    panels.append(row("Lambdas", y)); y += 1
    panels.append(panel(
        timeseries.Panel(), "Invocations, errors, throttles",
        "Per Polo Lambda, in the latest complete CloudWatch period (CloudWatch Sum).",
        [
            target(f'polo_lambda_invocations{{{SEL}}}', "invocations {{function}}", ref="A"),
            target(f'polo_lambda_errors{{{SEL}}}', "errors {{function}}", ref="B"),
            target(f'polo_lambda_throttles{{{SEL}}}', "throttles {{function}}", ref="C"),
        ],
        0, y, 12, 7, "short"))
    panels.append(panel(
        timeseries.Panel(), "Duration p95",
        "p95 duration of each Polo Lambda in the latest complete CloudWatch period.",
        [target(f'polo_lambda_duration_p95_seconds{{{SEL}}}', "{{function}}")],
        12, y, 12, 7, "s"))
    y += 7

    panels.append(row("Polo's own cost", y)); y += 1
    panels.append(panel(
        stat.Panel(), "Month to date and forecast",
        "Cost of the resources tagged polo:purpose=polo-infrastructure (Cost Explorer, source aws_cost, fetched a few "
        "times a day): month to date, the month-end forecast from the daily run rate, and the configured budget. "
        "The forecast turns red above the budget (PoloOwnCostOverBudget).",
        [
            target(f'sum(polo_own_cost_month_to_date_usd{{{SEL}}})', "month to date", True, ref="A"),
            target(f'sum(polo_own_cost_month_end_forecast_usd{{{SEL}}})', "forecast", True, ref="B"),
            target(f'sum(polo_own_cost_budget_usd{{{SEL}}})', "budget", True, ref="C"),
        ],
        0, y, 8, 6, "currencyUSD")
        .reduce_options(reduce_last()).color_mode(common.BigValueColorMode.VALUE).graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME))
    panels.append(panel(
        bargauge.Panel(), "Last complete day by service",
        "polo_own_cost_last_day_by_service_usd: what each AWS service of Polo's own infrastructure cost on the last complete day.",
        [target(f'sort_desc(sum by (service) (polo_own_cost_last_day_by_service_usd{{{SEL}}}))', "{{service}}", True)],
        8, y, 10, 6, "currencyUSD")
        .reduce_options(reduce_last()).orientation(common.VizOrientation.HORIZONTAL).display_mode(common.BarGaugeDisplayMode.BASIC))
    panels.append(panel(
        stat.Panel(), "Cost data",
        "polo_own_cost_data_available: 1 if Cost Explorer returned cost for the tag; 0 means the tag is not activated as a "
        "cost-allocation tag (or nothing is tagged), so no cost is shown rather than a false 0. Also: what the cost source's "
        "own requests cost (polo_exporter_aws_request_cost_usd_total).",
        [
            target(f'min(polo_own_cost_data_available{{{SEL}}})', "data available", True, ref="A"),
            target(f'sum(polo_exporter_aws_request_cost_usd_total{{{SEL},source="aws_cost"}})', "requests cost", True, ref="B"),
        ],
        18, y, 6, 6, "short", steps("red", (1, "green")))
        .reduce_options(reduce_last()).color_mode(common.BigValueColorMode.VALUE).graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .with_override(*by_query("B", "currencyUSD")))
    y += 6

    panels.append(row("Exporter", y)); y += 1
    panels.append(panel(
        statetimeline.Panel(), "Sources up",
        "polo_exporter_source_up: 1 when the source's latest attempt succeeded. While a source is down its series are served from its last good read.",
        [target(f'polo_exporter_source_up{{{SEL}}}', "{{source}}")],
        0, y, 12, 6, "bool_yes_no", steps("red", (1, "green"))))
    panels.append(panel(
        timeseries.Panel(), "Source durations",
        "How long each source's latest attempt took (polo_exporter_source_duration_seconds), and Prometheus's own scrape duration.",
        [
            target(f'polo_exporter_source_duration_seconds{{{SEL}}}', "{{source}}", ref="A"),
            target(f'scrape_duration_seconds{{{SEL}}}', "scrape {{instance}}", ref="B"),
        ],
        12, y, 6, 6, "s"))
    panels.append(panel(
        timeseries.Panel(), "Errors and rows read",
        "Failed source attempts per second by kind, and rows ClickHouse read per second for each source.",
        [
            target(f'sum by (source, kind) (rate(polo_exporter_source_errors_total{{{SEL}}}[$__rate_interval]))', "errors {{source}} {{kind}}", ref="A"),
            target(f'sum by (source) (rate(polo_exporter_clickhouse_read_rows_total{{{SEL}}}[$__rate_interval]))', "rows read {{source}}", ref="B"),
        ],
        18, y, 6, 6, "short"))
    y += 6

    for p in panels:
        d = d.with_row(p) if isinstance(p, dashboard.Row) else d.with_panel(p)
    built = d.build()
    # Grafana's built-in "Annotations & Alerts" (the builder has no setter for builtIn/type).
    built.annotations = model.AnnotationContainer(list_val=[model.AnnotationQuery(
        name="Annotations & Alerts", datasource=model.DataSourceRef(type_val="grafana", uid="-- Grafana --"),
        enable=True, hide=True, icon_color="rgba(0, 211, 255, 1)", type_val="dashboard", built_in=1)])
    return built


def to_json(d):
    """The dashboard JSON for file provisioning: `id` null (Grafana assigns it)."""
    data = json.loads(JSONEncoder(sort_keys=False, indent=2).encode(d))
    data = {"id": None, **data}
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    text = to_json(build())
    if sys.argv[1:] == ["--check"]:
        with open(OUT) as f:
            if f.read() != text:
                print(f"{OUT} differs from what dev/grafana/build_dashboard.py builds: run it and commit")
                sys.exit(1)
        print(f"{OUT} is what dev/grafana/build_dashboard.py builds")
        sys.exit(0)
    with open(OUT, "w") as f:
        f.write(text)
    print(f"wrote {OUT}")
