"""The demo data set: 8 collectors x 20 accounts x 3 regions over 7 days, kept live.

Scenarios (relative to the moment the server starts, `T0`):
- `cost_explorer_sync` (expected every 1h) stopped 5h before T0: stale.
- `config_rds` (every 30m) fails every run from 2h before T0 on: 4+ consecutive failures.
- `cur_ingest` on account 100000000003 / us-east-1 is `partial` from 90m before T0 on.
- `config_network` (every 15m) succeeds everywhere with zero events from 1h before T0 on: its
  output collapsed (PoloCollectorOutputCollapsed). Elsewhere every key produces events at its
  own level, ±30 % from run to run.
- account 100000000019 is `no_access`: its runs stop 30h before T0 (not scanned in 24h).
- account 100000000020 is `pending_setup` and was never scanned.
A background thread keeps inserting the runs that fall due, so the healthy collectors stay fresh.
Freshness SLO (docs/slo.md): the 7 days give `cost_explorer_sync` and `config_rds` an attainment
below the 0.995 objective from the first scrape, the other collectors one above it
(tests/slo.rs checks this).
"""

import json
import random
import threading
import time
import uuid

COLLECTORS = {  # name -> expected interval in seconds (mirrored in examples/local.yml)
    "config_ec2": 900,
    "config_ebs": 900,
    "config_network": 900,
    "hierarchy_builder": 900,
    "cloudwatch_metrics": 900,
    "config_rds": 1800,
    "cur_ingest": 3600,
    "cost_explorer_sync": 3600,
}
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]
SCANNED_ACCOUNTS = [f"1000000000{i:02d}" for i in range(20)]
NO_ACCESS = "100000000019"
PENDING = "100000000020"
DAYS = 7

_stop = threading.Event()


def accounts():
    names = ["prod-core", "prod-data", "prod-edge", "staging", "dev", "sandbox", "security", "logging",
             "billing", "analytics", "ml-platform", "search", "payments", "mobile", "web", "networking",
             "shared-services", "dr-site", "research", "legacy-erp"]
    rows = []
    for i, account in enumerate(SCANNED_ACCOUNTS):
        status = "no_access" if account == NO_ACCESS else "active"
        rows.append({"aws_account_id": account, "account_name": names[i], "polo_status": status})
    rows.append({"aws_account_id": PENDING, "account_name": "new-acquisition \"Zürich\"", "polo_status": "pending_setup"})
    return rows


def run_for(collector, account, region, start, t0):
    """The run that starts at `start`, or None if the scenario says it did not happen."""
    if collector == "cost_explorer_sync" and start > t0 - 5 * 3600:
        return None
    if account == NO_ACCESS and start > t0 - 30 * 3600:
        return None
    rng = random.Random(f"{collector}/{account}/{region}/{int(start)}")
    duration = rng.randint(2_000, 90_000)
    status, error = "succeeded", ""
    if collector == "config_rds" and start > t0 - 2 * 3600:
        status, error = "failed", "AccessDenied: User: arn:aws:sts::{0}:assumed-role/polo-collector is not authorized to perform: rds:DescribeDBInstances\n  at collect (config_rds.py:88)".format(account)
    elif collector == "cur_ingest" and account == "100000000003" and region == "us-east-1" and start > t0 - 5400:
        status, error = "partial", "3 of 12 CUR parquet files skipped: schema mismatch on column 'line_item_usage_amount'"
    elif rng.random() < 0.01:
        status, error = "failed", "ThrottlingException: Rate exceeded"
    level = random.Random(f"{collector}/{account}/{region}").randint(50, 5_000)
    events = 0 if status == "failed" else round(level * rng.uniform(0.7, 1.3))
    if collector == "config_network" and start > t0 - 3600 and status == "succeeded":
        events = 0
    return {
        "run_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "collector": collector,
        "aws_account_id": account,
        "aws_region": region,
        "started_at": round(start, 3),
        "completed_at": round(start + duration / 1000, 3),
        "status": status,
        "events_produced": events,
        "rows_inserted": events * 3,
        "error": error,
        "duration_ms": duration,
    }


def runs_between(t_from, t_to, t0):
    """Every scenario run with t_from <= completed_at < t_to."""
    out = []
    for collector, interval in COLLECTORS.items():
        for a, account in enumerate(SCANNED_ACCOUNTS):
            for r, region in enumerate(REGIONS):
                offset = (a * 37 + r * 11 + len(collector) * 7) % interval
                first = ((t_from - offset - 120) // interval) * interval + offset
                start = first
                while start < t_to:
                    run = run_for(collector, account, region, start, t0)
                    if run and t_from <= run["completed_at"] < t_to:
                        out.append(run)
                    start += interval
    return out


def as_json(run):
    # DateTime64 as a quoted "seconds.millis": before 25.x ClickHouse does not parse a JSON
    # float into DateTime64 (code 27, seen on 24.8 and 25.8).
    return json.dumps({k: (f"{v:.3f}" if k in ("started_at", "completed_at") else v) for k, v in run.items()})


def insert_runs(engine, runs):
    for i in range(0, len(runs), 20_000):
        body = "\n".join(as_json(r) for r in runs[i:i + 20_000])
        engine.query("INSERT INTO polo.collector_runs FORMAT JSONEachRow\n" + body)


def seed(engine, live=True):
    t0 = time.time()
    body = "\n".join(json.dumps(a, ensure_ascii=False) for a in accounts())
    engine.query("INSERT INTO polo.aws_accounts (aws_account_id, account_name, polo_status) FORMAT JSONEachRow\n" + body)
    runs = runs_between(t0 - DAYS * 86400, t0, t0)
    insert_runs(engine, runs)
    print(f"dev-clickhouse: demo data: {len(runs)} runs, {len(accounts())} accounts", flush=True)

    def tick():
        last = t0
        while not _stop.wait(20):
            now = time.time()
            insert_runs(engine, runs_between(last, now, t0))
            last = now

    if live:
        threading.Thread(target=tick, daemon=True).start()


def stop():
    _stop.set()
