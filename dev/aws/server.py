#!/usr/bin/env python3
"""A local AWS endpoint for polo-exporter's tests and demo, spoken to by the real Rust SDKs.

- SQS (AWS JSON protocol), STS and everything else: moto's server app.
- CloudWatch GetMetricData / PutMetricData in the Smithy RPC v2 CBOR protocol that
  aws-sdk-cloudwatch speaks (moto answers it 404): a small store of our own, with CloudWatch's
  500-queries-per-call limit and NextToken pagination (page size --cw-page-size).
- /_polo/... control endpoints for tests: call counts per operation, faults (access denied on a
  queue, a queue deleted right after ListQueues), datapoints to add.
"""

import argparse
import datetime as dt
import io
import json
import math
import os
import re
import sys
import threading
import time

import logging

import cbor2
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

HERE = os.path.dirname(os.path.abspath(__file__))
CBOR_PREFIX = "/service/GraniteServiceVersion20100801/operation/"
ACCOUNT = "123456789012"
UTC = dt.timezone.utc


class MetricStore:
    """Raw datapoints per (namespace, metric name, dimensions), aggregated per period on read."""

    def __init__(self):
        self.lock = threading.Lock()
        self.points = {}

    @staticmethod
    def key(namespace, name, dimensions):
        return (namespace, name, tuple(sorted((d["Name"], d["Value"]) for d in dimensions or [])))

    def put(self, namespace, name, dimensions, timestamp, value):
        with self.lock:
            self.points.setdefault(self.key(namespace, name, dimensions), []).append((timestamp, float(value)))

    def query(self, stat, start, end):
        metric = stat["Metric"]
        period = int(stat["Period"])
        with self.lock:
            points = list(self.points.get(self.key(metric["Namespace"], metric["MetricName"], metric.get("Dimensions")), []))
        buckets = {}
        for ts, value in points:
            if start <= ts < end:
                buckets.setdefault(math.floor(ts / period) * period, []).append(value)
        rows = sorted(((b, aggregate(stat["Stat"], vals)) for b, vals in buckets.items()), reverse=True)
        return [b for b, _ in rows], [v for _, v in rows]


def aggregate(stat, values):
    if stat == "Sum":
        return sum(values)
    if stat == "Maximum":
        return max(values)
    if stat == "Minimum":
        return min(values)
    if stat == "Average":
        return sum(values) / len(values)
    if stat == "SampleCount":
        return float(len(values))
    m = re.fullmatch(r"p(\d+(\.\d+)?)", stat)
    if m:
        ordered = sorted(values)
        rank = max(0, math.ceil(float(m.group(1)) / 100 * len(ordered)) - 1)
        return ordered[rank]
    raise ValueError(f"unsupported statistic {stat}")


class Front:
    def __init__(self, page_size):
        self.moto = DomainDispatcherApplication(create_backend_app)
        self.store = MetricStore()
        self.page_size = page_size
        self.lock = threading.Lock()
        self.calls = {}
        self.faults = {"deny_queues": [], "delete_after_list": []}
        # /_polo/ answers 503 until the seed data is in, so "ready" means seeded.
        self.ready = False

    def count(self, operation, n=1):
        with self.lock:
            self.calls[operation] = self.calls.get(operation, 0) + n

    def __call__(self, environ, start_response):
        req = Request(environ)
        body = req.get_data(cache=True)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        if req.path.startswith("/_polo/"):
            if not self.ready:
                return Response("seeding", status=503)(environ, start_response)
            return self.control(req)(environ, start_response)
        if req.path.startswith(CBOR_PREFIX):
            return self.cloudwatch(req.path[len(CBOR_PREFIX):], body)(environ, start_response)
        if req.path == "/" and b"Action=AssumeRole" in body:
            self.count("sts:AssumeRole")
        target = req.headers.get("X-Amz-Target", "")
        if target.startswith("AmazonSQS."):
            operation = target.split(".", 1)[1]
            self.count("sqs:" + operation)
            payload = json.loads(body or b"{}")
            url = payload.get("QueueUrl", "")
            if url and url.rsplit("/", 1)[-1] in self.faults["deny_queues"]:
                return sqs_error(403, "com.amazon.coral.service#AccessDeniedException", "AccessDenied",
                                 f"User is not authorized to perform: sqs:{operation} on resource {url}")(environ, start_response)
            if operation == "ListQueues" and self.faults["delete_after_list"]:
                result = self.moto(environ, start_response)
                self.delete_queues(self.faults["delete_after_list"])
                return result
        return self.moto(environ, start_response)

    def delete_queues(self, names):
        from moto.sqs.models import sqs_backends
        for region, backend in sqs_backends[ACCOUNT].items():
            for name in names:
                if name in backend.queues:
                    backend.delete_queue(name)

    def control(self, req):
        if req.path == "/_polo/stats":
            with self.lock:
                return Response(json.dumps(self.calls), content_type="application/json")
        if req.path == "/_polo/stats/reset":
            with self.lock:
                self.calls = {}
            return Response("{}", content_type="application/json")
        if req.path == "/_polo/faults":
            self.faults.update(json.loads(req.get_data() or b"{}"))
            return Response(json.dumps(self.faults), content_type="application/json")
        if req.path == "/_polo/datapoints":
            for p in json.loads(req.get_data()):
                self.store.put(p["namespace"], p["name"], p.get("dimensions", []), float(p["timestamp"]), p["value"])
            return Response("{}", content_type="application/json")
        return Response("not found", status=404)

    def cloudwatch(self, operation, body):
        self.count("cloudwatch:" + operation)
        try:
            request = cbor2.loads(body) if body else {}
        except Exception as exc:  # noqa: BLE001
            return cbor_error("SerializationException", str(exc))
        if operation == "PutMetricData":
            for d in request.get("MetricData", []):
                ts = d.get("Timestamp") or dt.datetime.now(UTC)
                self.store.put(request["Namespace"], d["MetricName"], d.get("Dimensions"), ts.timestamp(), d.get("Value", 0))
            return cbor_response({})
        if operation != "GetMetricData":
            return cbor_error("UnknownOperationException", f"{operation} is not emulated")
        queries = request.get("MetricDataQueries", [])
        if len(queries) > 500:
            return cbor_error("ValidationError", "The collection MetricDataQueries must not have a size greater than 500.")
        self.count("cloudwatch:metrics_requested", len(queries) if not request.get("NextToken") else 0)
        start = request["StartTime"].timestamp()
        end = request["EndTime"].timestamp()
        offset = int(request.get("NextToken") or 0)
        page = queries[offset:offset + self.page_size]
        results = []
        for q in page:
            if "MetricStat" not in q:
                results.append({"Id": q["Id"], "StatusCode": "InternalError", "Timestamps": [], "Values": []})
                continue
            stamps, values = self.store.query(q["MetricStat"], start, end)
            results.append({
                "Id": q["Id"],
                "Label": q.get("Label") or q["MetricStat"]["Metric"]["MetricName"],
                "Timestamps": [dt.datetime.fromtimestamp(s, UTC) for s in stamps],
                "Values": values,
                "StatusCode": "Complete",
            })
        response = {"MetricDataResults": results, "Messages": []}
        if offset + self.page_size < len(queries):
            response["NextToken"] = str(offset + self.page_size)
        return cbor_response(response)


def cbor_response(obj, status=200):
    return Response(cbor2.dumps(obj, datetime_as_timestamp=True, timezone=UTC), status=status,
                    headers={"smithy-protocol": "rpc-v2-cbor", "Content-Type": "application/cbor"})


def cbor_error(code, message, status=400):
    return cbor_response({"__type": f"com.amazonaws.cloudwatch#{code}", "message": message}, status)


def sqs_error(status, type_, code, message):
    return Response(json.dumps({"__type": type_, "message": message}), status=status,
                    headers={"Content-Type": "application/x-amz-json-1.0", "x-amzn-query-error": f"{code};Sender"})


def main():
    parser = argparse.ArgumentParser(description="Local AWS endpoint (SQS via moto, CloudWatch CBOR) for polo-exporter.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    parser.add_argument("--seed", choices=["demo", "empty"], default="empty")
    parser.add_argument("--static", action="store_true", help="with --seed demo: do not keep adding datapoints")
    parser.add_argument("--cw-page-size", type=int, default=100, help="GetMetricData results per page (NextToken beyond)")
    args = parser.parse_args()
    # moto must not look for real credentials or reach real AWS.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    front = Front(args.cw_page_size)
    server = make_server(args.host, args.port, front, threaded=True)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    if args.seed == "demo":
        sys.path.insert(0, HERE)
        import demo_data
        demo_data.seed(f"http://{args.host}:{port}", front.store, live=not args.static)
    front.ready = True
    print(f"dev-aws: listening on http://{args.host}:{port} (seed {args.seed})", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
