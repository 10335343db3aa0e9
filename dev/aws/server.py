#!/usr/bin/env python3
"""A local AWS endpoint for polo-exporter's tests and demo, spoken to by the real Rust SDKs.

- SQS (AWS JSON protocol), STS and everything else: moto's server app.
- CloudWatch GetMetricData / PutMetricData in the Smithy RPC v2 CBOR protocol that
  aws-sdk-cloudwatch speaks (moto answers it 404): a small store of our own, with CloudWatch's
  500-queries-per-call limit and NextToken pagination (page size --cw-page-size).
- Cost Explorer GetCostAndUsage (AWS JSON 1.1, as aws-sdk-costexplorer speaks it): a store of
  daily line items (day, service, tags, cost) evaluated like Cost Explorer does: time period,
  DAILY/MONTHLY granularity, Tags/Dimensions/And/Or/Not filters, GroupBy SERVICE or a tag, only
  *activated* cost-allocation tags visible to filters, NextPageToken every --ce-page-size groups.
  moto 5.2's own GetCostAndUsage answers canned results queued through
  /moto-api/static/ce/cost-and-usage-results, keyed by the exact request body, without applying
  the filter, the grouping or pagination: a test would only read back what it queued.
- /_polo/... control endpoints for tests: call counts per operation, faults (access denied on a
  queue, a queue deleted right after ListQueues, Cost Explorer denied), datapoints and costs to add.
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


COST_METRICS = ("UnblendedCost", "AmortizedCost", "NetUnblendedCost", "BlendedCost")


class CostStore:
    """Daily cost line items: (day "YYYY-MM-DD", service, tags {key: value}, {metric: USD})."""

    def __init__(self, page_size):
        self.lock = threading.Lock()
        self.items = []
        self.active_tags = set()
        self.page_size = page_size

    def add(self, items, active_tags=None, replace=False):
        rows = []
        for it in items:
            cost = it["cost"]
            amounts = dict(cost) if isinstance(cost, dict) else {m: float(cost) for m in COST_METRICS}
            rows.append((it["day"], it["service"], dict(it.get("tags") or {}), amounts))
        with self.lock:
            if replace:
                self.items = []
            self.items.extend(rows)
            if active_tags is not None:
                self.active_tags = set(active_tags)

    def matches(self, expr, item):
        day, service, tags, _ = item
        if not expr:
            return True
        if "And" in expr:
            return all(self.matches(e, item) for e in expr["And"])
        if "Or" in expr:
            return any(self.matches(e, item) for e in expr["Or"])
        if "Not" in expr:
            return not self.matches(expr["Not"], item)
        if "Tags" in expr:
            t = expr["Tags"]
            key, values = t["Key"], t.get("Values") or []
            # An inactive cost-allocation tag is unknown to Cost Explorer's data: nothing carries it.
            value = tags.get(key) if key in self.active_tags else None
            opts = t.get("MatchOptions") or ["EQUALS"]
            if "ABSENT" in opts:
                return value is None
            return value is not None and value in values
        if "Dimensions" in expr:
            d = expr["Dimensions"]
            if d["Key"] != "SERVICE":
                raise ValueError(f"dimension {d['Key']} is not emulated")
            return service in (d.get("Values") or [])
        raise ValueError(f"filter {sorted(expr)} is not emulated")

    def query(self, req):
        """The GetCostAndUsage answer (one page) for a request, or raises ValueError."""
        period = req.get("TimePeriod") or {}
        start, end = dt.date.fromisoformat(period["Start"]), dt.date.fromisoformat(period["End"])
        if start >= end:
            raise ValueError("Start date must be before End date")
        granularity = req.get("Granularity")
        if granularity not in ("DAILY", "MONTHLY"):
            raise ValueError(f"Granularity {granularity!r} is not emulated")
        metrics = req.get("Metrics") or []
        if not metrics or any(m not in COST_METRICS for m in metrics):
            raise ValueError(f"Metrics {metrics!r}: give one or more of {COST_METRICS}")
        group_by = req.get("GroupBy") or []
        if len(group_by) > 2:
            raise ValueError("at most 2 GroupBy")
        buckets = []
        d = start
        while d < end:
            if granularity == "DAILY":
                nxt = d + dt.timedelta(days=1)
            else:
                nxt = (d.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
            nxt = min(nxt, end)
            buckets.append((d, nxt))
            d = nxt
        with self.lock:
            items = [i for i in self.items if self.matches(req.get("Filter"), i)]

        def group_key(item):
            keys = []
            for g in group_by:
                if g["Type"] == "DIMENSION" and g["Key"] == "SERVICE":
                    keys.append(item[1])
                elif g["Type"] == "TAG":
                    value = item[2].get(g["Key"]) if g["Key"] in self.active_tags else None
                    keys.append(f"{g['Key']}${value or ''}")
                else:
                    raise ValueError(f"GroupBy {g} is not emulated")
            return tuple(keys)

        entries = []  # (bucket index, group or None), in order: what a page slices
        for bi, (b0, b1) in enumerate(buckets):
            in_bucket = [i for i in items if b0 <= dt.date.fromisoformat(i[0]) < b1]
            if group_by:
                groups = {}
                for i in in_bucket:
                    sums = groups.setdefault(group_key(i), {m: 0.0 for m in metrics})
                    for m in metrics:
                        sums[m] += i[3].get(m, 0.0)
                if not groups:
                    entries.append((bi, None))
                for keys in sorted(groups):
                    entries.append((bi, {"Keys": list(keys), "Metrics": {m: {"Amount": repr(round(v, 10)), "Unit": "USD"} for m, v in groups[keys].items()}}))
            else:
                entries.append((bi, {m: sum(i[3].get(m, 0.0) for i in in_bucket) for m in metrics}))
        offset = int(req.get("NextPageToken") or 0)
        page = entries[offset:offset + self.page_size] if group_by else entries
        results = []
        for bi, group in page:
            b0, b1 = buckets[bi]
            if not results or results[-1]["_bi"] != bi:
                results.append({"_bi": bi, "TimePeriod": {"Start": b0.isoformat(), "End": b1.isoformat()},
                                "Total": {}, "Groups": [], "Estimated": b1 >= dt.datetime.now(UTC).date()})
            if group_by and group:
                results[-1]["Groups"].append(group)
            elif not group_by:
                results[-1]["Total"] = {m: {"Amount": repr(round(v, 10)), "Unit": "USD"} for m, v in group.items()}
        for r in results:
            del r["_bi"]
        response = {"GroupDefinitions": group_by, "ResultsByTime": results, "DimensionValueAttributes": []}
        if group_by and offset + self.page_size < len(entries):
            response["NextPageToken"] = str(offset + self.page_size)
        return response


class Front:
    def __init__(self, page_size, ce_page_size=100):
        self.moto = DomainDispatcherApplication(create_backend_app)
        self.store = MetricStore()
        self.costs = CostStore(ce_page_size)
        self.page_size = page_size
        self.lock = threading.Lock()
        self.calls = {}
        self.faults = {"deny_queues": [], "delete_after_list": [], "deny_cost_explorer": False}
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
        if target.startswith("AWSInsightsIndexService."):
            scope = re.search(r"Credential=[^/]+/\d+/([^/]+)/", req.headers.get("Authorization", ""))
            self.count("ce:region:" + (scope.group(1) if scope else "unsigned"))
            return self.cost_explorer(target.split(".", 1)[1], body)(environ, start_response)
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
        if req.path == "/_polo/costs":
            p = json.loads(req.get_data() or b"{}")
            self.costs.add(p.get("items", []), p.get("active_tags"), p.get("replace", False))
            return Response("{}", content_type="application/json")
        return Response("not found", status=404)

    def cost_explorer(self, operation, body):
        self.count("ce:" + operation)
        if self.faults.get("deny_cost_explorer"):
            return ce_error(400, "AccessDeniedException", f"User is not authorized to perform: ce:{operation}")
        if operation != "GetCostAndUsage":
            return ce_error(400, "UnknownOperationException", f"{operation} is not emulated")
        try:
            return Response(json.dumps(self.costs.query(json.loads(body or b"{}"))), headers={"Content-Type": "application/x-amz-json-1.1"})
        except (ValueError, KeyError) as exc:
            return ce_error(400, "ValidationException", str(exc))

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


def ce_error(status, code, message):
    return Response(json.dumps({"__type": code, "Message": message}), status=status,
                    headers={"Content-Type": "application/x-amz-json-1.1"})


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
    parser.add_argument("--ce-page-size", type=int, default=100, help="GetCostAndUsage groups per page (NextPageToken beyond)")
    args = parser.parse_args()
    # moto must not look for real credentials or reach real AWS.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    front = Front(args.cw_page_size, args.ce_page_size)
    server = make_server(args.host, args.port, front, threaded=True)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    if args.seed == "demo":
        sys.path.insert(0, HERE)
        import demo_data
        demo_data.seed(f"http://{args.host}:{port}", front.store, live=not args.static)
        demo_data.seed_costs(front.costs)
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
