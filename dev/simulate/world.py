"""The simulated Polo of scripts/simulate: every key (collector, account, region) runs on its
collector's schedule (the production interval divided by time_scale, with jitter) and writes its
row when the run completes, as collectors do, in many small INSERTs (never OPTIMIZE); incidents
change what the runs write, or stop them. Accounts live in polo.aws_accounts, queues in the AWS
emulator."""

import json
import random
import threading
import time
import urllib.parse
import urllib.request

import boto3

REGION = "eu-west-1"
QUEUES = ("polo-events", "polo-cur-events")


class World:
    def __init__(self, sc, clickhouse_url, aws_url, t0):
        self.sc = sc
        self.ch = clickhouse_url
        self.aws_url = aws_url
        self.t0 = t0
        self.rng = random.Random(sc["seed"])
        self.keys = [(c, a, r) for c in sc["collectors"] for a in sc["accounts"] for r in sc["regions"]]
        self.lock = threading.Lock()
        self.pending = []  # (insert_at, row)
        self.stop_event = threading.Event()
        self.inserted = 0
        self.batches = 0
        self.errors = []
        self.ch_paused = threading.Event()  # set while ClickHouse is down: rows wait for it
        # Each key's next start (wall clock) and typical output.
        self.next_start = {}
        self.events = {}
        for key in self.keys:
            interval = self.interval(key[0])
            self.next_start[key] = t0 + self.rng.uniform(0, interval)
            self.events[key] = self.rng.randint(50, 500)

    # --- helpers --------------------------------------------------------------------------------
    def interval(self, collector):
        return self.sc["collectors"][collector] / self.sc["time_scale"]

    def now_s(self):
        return time.time() - self.t0

    def sql(self, query, body=b""):
        url = self.ch + "/?" + urllib.parse.urlencode({"query": query})
        return urllib.request.urlopen(urllib.request.Request(url, data=body or None, method="POST"), timeout=30).read()

    def sqs(self):
        return boto3.client("sqs", endpoint_url=self.aws_url, region_name=REGION,
                            aws_access_key_id="sim", aws_secret_access_key="sim")

    def active(self, kind, t, **match):
        """Incidents of `kind` in force at run second t and matching `match`."""
        out = []
        for inc in self.sc["incidents"]:
            if inc["kind"] != kind or not inc["start_s"] <= t < max(inc["end_s"], inc["start_s"] + 1e-9):
                continue
            if all(inc.get(k) == v for k, v in match.items()):
                out.append(inc)
        return out

    def affected(self, inc, account):
        n = inc.get("accounts")
        return n is None or self.sc["accounts"].index(account) < n

    # --- setup ----------------------------------------------------------------------------------
    def setup(self):
        rows = "\n".join(json.dumps({"aws_account_id": a, "account_name": f"customer {i}", "polo_status": "active"})
                         for i, a in enumerate(self.sc["accounts"]))
        self.sql("INSERT INTO polo.aws_accounts (aws_account_id, account_name, polo_status) FORMAT JSONEachRow", rows.encode())
        # History: each key succeeded at its last three scheduled times, so it is healthy at t=0.
        history = []
        for key in self.keys:
            interval = self.interval(key[0])
            for j in range(1, 4):
                start = self.next_start[key] - j * interval
                history.append(self.row(key, start, min(interval * 0.2, 60), "succeeded", self.events[key]))
        for i in range(0, len(history), 500):
            self.insert(history[i:i + 500])
        sqs = self.sqs()
        for name in QUEUES:
            dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "3"})})

    def row(self, key, start, duration, status, events, error=""):
        collector, account, region = key
        return {
            "collector": collector, "aws_account_id": account, "aws_region": region,
            "started_at": f"{start:.3f}", "completed_at": f"{start + duration:.3f}", "status": status,
            "events_produced": events, "rows_inserted": events, "error": error, "duration_ms": int(duration * 1000),
        }

    def insert(self, rows):
        body = "\n".join(json.dumps(r) for r in rows).encode()
        self.sql("INSERT INTO polo.collector_runs FORMAT JSONEachRow", body)
        self.inserted += len(rows)
        self.batches += 1

    # --- the run --------------------------------------------------------------------------------
    def schedule(self, now):
        """Starts every run due by `now`: its row is queued for when it completes (or later)."""
        for key, start in self.next_start.items():
            if start > now:
                continue
            collector, account, _ = key
            interval = self.interval(collector)
            self.next_start[key] = start + interval * self.rng.uniform(0.9, 1.1)
            t = start - self.t0
            if self.active("collector_stops", t, collector=collector):
                continue
            if any(inc["account"] is not None and self.sc["accounts"][inc["account"]] == account
                   for inc in self.active("account_loses_access", t)):
                continue
            duration = min(interval * self.rng.uniform(0.1, 0.3), 60)
            status, events, error = "succeeded", int(self.events[key] * self.rng.uniform(0.8, 1.2)), ""
            for inc in self.active("collector_fails", t, collector=collector):
                if self.affected(inc, account):
                    status, error = inc["status"], "AccessDenied: simulated"
                    events = 0 if status == "failed" else events // 3
            for inc in self.active("collector_silent", t, collector=collector):
                if self.affected(inc, account):
                    events = 0
            delay = max((inc["delay"] / self.sc["time_scale"] for inc in self.active("late_rows", t, collector=collector)), default=0)
            with self.lock:
                self.pending.append((start + max(duration, delay), self.row(key, start, duration, status, events, error)))

    def flush(self, now):
        if self.ch_paused.is_set():
            return
        with self.lock:
            due = [r for at, r in self.pending if at <= now]
            self.pending = [(at, r) for at, r in self.pending if at > now]
        if due:
            try:
                self.insert(due)
            except Exception as err:  # the server may be going down: keep the rows for later
                with self.lock:
                    self.pending.extend((now, r) for r in due)
                self.errors.append(str(err)[:200])

    def set_account_status(self, account, status):
        row = json.dumps({"aws_account_id": account, "account_name": "customer", "polo_status": status})
        self.sql("INSERT INTO polo.aws_accounts (aws_account_id, account_name, polo_status) FORMAT JSONEachRow", row.encode())

    def fill_dlq(self, queue, messages):
        sqs = self.sqs()
        url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        for i in range(messages):
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"simulated": i}))

    def drain_dlq(self, queue):
        sqs = self.sqs()
        sqs.purge_queue(QueueUrl=sqs.get_queue_url(QueueName=queue)["QueueUrl"])

    def loop(self):
        while not self.stop_event.is_set():
            now = time.time()
            self.schedule(now)
            self.flush(now)
            self.stop_event.wait(0.5)

    def start(self):
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def stop(self):
        self.stop_event.set()
        self.thread.join(10)
