"""Demo data for dev-aws: Polo's queues and Lambda datapoints.

- polo-events with its dead-letter queue polo-events-dlq (3 messages in the DLQ, 12 waiting in
  polo-events); polo-cur-events with polo-cur-events-dlq, both empty (the healthy pair).
- CloudWatch: Invocations, Errors, Throttles and Duration of polo-collector-config-ec2 and
  polo-cur-ingest, and ApproximateAgeOfOldestMessage of every queue, one datapoint a minute for
  the last two hours and, unless static, on from now.
- Cost Explorer: daily costs of Polo's own infrastructure (tagged polo:purpose=polo-infrastructure,
  the tag activated) for five services from the first of the previous month through today (today
  pro rata), about $12.70 a day, so the month-end forecast (about $390 in a 31-day month) is above
  the demo budget ($300, examples/local.yml); plus untagged EC2 cost of other workloads that the
  tag filter must leave out.
"""

import datetime as dt
import json
import threading
import time

import boto3

REGION = "eu-west-1"
FUNCTIONS = {"polo-collector-config-ec2": (60, 1, 0, 850.0), "polo-cur-ingest": (12, 0, 2, 41000.0)}


def seed(endpoint, store, live=True):
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test")
    for name, waiting, dead in (("polo-events", 12, 3), ("polo-cur-events", 0, 0)):
        dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        url = sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})})["QueueUrl"]
        for i in range(dead):
            sqs.send_message(QueueUrl=dlq_url, MessageBody=json.dumps({"event": "cost-report", "n": i}))
        for i in range(waiting):
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"event": "resource-change", "n": i}))

    def put_minute(ts):
        for fn, (invocations, errors, throttles, duration_ms) in FUNCTIONS.items():
            dims = [{"Name": "FunctionName", "Value": fn}]
            store.put("AWS/Lambda", "Invocations", dims, ts, invocations)
            store.put("AWS/Lambda", "Errors", dims, ts, errors)
            store.put("AWS/Lambda", "Throttles", dims, ts, throttles)
            for k in range(5):
                store.put("AWS/Lambda", "Duration", dims, ts, duration_ms * (0.6 + 0.1 * k))
        for queue, age in (("polo-events", 240), ("polo-events-dlq", 5400), ("polo-cur-events", 0), ("polo-cur-events-dlq", 0)):
            store.put("AWS/SQS", "ApproximateAgeOfOldestMessage", [{"Name": "QueueName", "Value": queue}], ts, age)

    now = time.time()
    for minute in range(120, 0, -1):
        put_minute(now - minute * 60)

    def tick():
        while True:
            time.sleep(60)
            put_minute(time.time())

    if live:
        threading.Thread(target=tick, daemon=True).start()


# Service → USD per day of Polo's own resources; day-to-day variation is ±10 % (deterministic).
DAILY_COSTS = {
    "AWS Lambda": 1.8,
    "Amazon Simple Queue Service": 0.35,
    "Amazon Elastic Compute Cloud - Compute": 9.6,  # the ClickHouse instance
    "Amazon Simple Storage Service": 0.8,  # the CUR bucket
    "AWS Secrets Manager": 0.13,
}
TAG = {"polo:purpose": "polo-infrastructure"}


def cost_items(today=None):
    """The demo's cost line items, from the first of the previous month through `today` (UTC)."""
    now = dt.datetime.now(dt.timezone.utc)
    today = today or now.date()
    first = (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    items = []
    day = first
    while day <= today:
        share = (now.hour * 3600 + now.minute * 60) / 86400 if day == today else 1.0
        for k, (service, usd) in enumerate(DAILY_COSTS.items()):
            wobble = 1 + 0.1 * (((day.toordinal() * 7 + k * 13) % 21) - 10) / 10
            items.append({"day": day.isoformat(), "service": service, "tags": TAG, "cost": round(usd * wobble * share, 4)})
        items.append({"day": day.isoformat(), "service": "Amazon Elastic Compute Cloud - Compute", "tags": {}, "cost": 250.0 * share})
        day += dt.timedelta(days=1)
    return items


def seed_costs(store):
    store.add(cost_items(), active_tags=["polo:purpose"])
