"""Demo data for dev-aws: Polo's queues and Lambda datapoints.

- polo-events with its dead-letter queue polo-events-dlq (3 messages in the DLQ, 12 waiting in
  polo-events); polo-cur-events with polo-cur-events-dlq, both empty (the healthy pair).
- CloudWatch: Invocations, Errors, Throttles and Duration of polo-collector-config-ec2 and
  polo-cur-ingest, and ApproximateAgeOfOldestMessage of every queue, one datapoint a minute for
  the last two hours and, unless static, on from now.
"""

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
