#!/usr/bin/env python3
"""Sends one batch of each OTLP signal (a counter, a log record, a span) with the OpenTelemetry
Python SDK's OTLP/HTTP protobuf exporters (PyPI opentelemetry-exporter-otlp-proto-http, pinned
and installed into .venv by `make test`), as an instrumented application would.

    TOLLGATE_TOKEN=... otlp_send.py --url http://127.0.0.1:10000 \
        --resource service.name=checkout --resource kube.namespace=team-a

The token is read from the environment (never argv, which process listings show) and sent as
`authorization: Bearer <token>`. Each exporter posts to <url>/v1/metrics, /v1/logs, /v1/traces.
Options: --resource KEY=VALUE (resource attributes), --attribute KEY=VALUE (on the data point,
the log record and the span), --header KEY=VALUE, --signal (one of metrics, logs, traces;
repeatable), --compression none|gzip, --timeout SECONDS. Prints one JSON object on stdout and
exits 0 whatever the exports' outcome:

    {"metrics": {"result": "SUCCESS", "status": 200, "body": "..."}, "logs": {...}, "traces": {...}}

`result` is the exporter's own verdict (SUCCESS or FAILURE); `status` and `body` are those of the
HTTP response it got (null when it got none). Retries: the exporter retries only 429, 502, 503
and 504 (and a connection error once), so a 403 or 415 fails at once; --timeout bounds the rest.
"""

import argparse
import json
import logging
import os
import sys

import requests
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

SIGNALS = ("metrics", "logs", "traces")


def pairs(values):
    out = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"expected KEY=VALUE, got {item!r}")
        out[key] = value
    return out


class Recorder:
    """A requests session whose response hook keeps the last HTTP answer of one exporter."""

    def __init__(self):
        self.session = requests.Session()
        self.status = None
        self.body = None
        self.session.hooks["response"].append(self._hook)

    def _hook(self, response, *args, **kwargs):
        self.status = response.status_code
        self.body = response.text[:2000]
        return response


class Delegate:
    """Wraps an SDK exporter (span or log) to keep the result of what a processor exported."""

    def __init__(self, inner):
        self.inner = inner
        self.result = None

    def export(self, batch):
        self.result = self.inner.export(batch)
        return self.result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis=30000):
        return True


def outcome(result, recorder):
    name = getattr(result, "name", None) if result is not None else "NOT_EXPORTED"
    return {"result": name, "status": recorder.status, "body": recorder.body}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="base URL; /v1/<signal> is appended")
    parser.add_argument("--resource", action="append", help="resource attribute KEY=VALUE")
    parser.add_argument(
        "--attribute",
        action="append",
        help="attribute KEY=VALUE on the data point, the log record and the span",
    )
    parser.add_argument("--header", action="append", help="extra request header KEY=VALUE")
    parser.add_argument("--signal", action="append", choices=SIGNALS, help="default: all three")
    parser.add_argument(
        "--compression", choices=("none", "gzip"), default="none", help="request body encoding"
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per export")
    parser.add_argument("--token-env", default="TOLLGATE_TOKEN", help="variable holding the token")
    args = parser.parse_args()

    token = os.environ.get(args.token_env)
    headers = pairs(args.header)
    if token:
        headers["authorization"] = f"Bearer {token}"
    base = args.url.rstrip("/")
    resource = Resource.create(pairs(args.resource))
    attributes = pairs(args.attribute)
    signals = args.signal or list(SIGNALS)
    compression = Compression.Gzip if args.compression == "gzip" else Compression.NoCompression
    # The exporters log failures (e.g. a 403) on stderr; the JSON on stdout is the summary.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    summary = {}

    if "metrics" in signals:
        recorder = Recorder()
        reader = InMemoryMetricReader()
        provider = MeterProvider(resource=resource, metric_readers=[reader])
        counter = provider.get_meter("tollgate.e2e").create_counter(
            "e2e_requests", unit="1", description="requests the e2e client counted"
        )
        counter.add(3, attributes)
        data = reader.get_metrics_data()
        exporter = OTLPMetricExporter(
            endpoint=f"{base}/v1/metrics",
            headers=headers,
            timeout=args.timeout,
            compression=compression,
            session=recorder.session,
        )
        result = exporter.export(data, timeout_millis=args.timeout * 1000)
        exporter.shutdown()
        provider.shutdown()
        summary["metrics"] = outcome(result, recorder)

    if "logs" in signals:
        recorder = Recorder()
        exporter = Delegate(
            OTLPLogExporter(
                endpoint=f"{base}/v1/logs",
                headers=headers,
                timeout=args.timeout,
                compression=compression,
                session=recorder.session,
            )
        )
        provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
        provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        provider.get_logger("tollgate.e2e").emit(
            severity_number=SeverityNumber.INFO,
            severity_text="INFO",
            body="e2e log line",
            attributes=attributes,
        )
        provider.shutdown()
        summary["logs"] = outcome(exporter.result, recorder)

    if "traces" in signals:
        recorder = Recorder()
        exporter = Delegate(
            OTLPSpanExporter(
                endpoint=f"{base}/v1/traces",
                headers=headers,
                timeout=args.timeout,
                compression=compression,
                session=recorder.session,
            )
        )
        provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        with provider.get_tracer("tollgate.e2e").start_as_current_span("e2e-span") as span:
            for key, value in attributes.items():
                span.set_attribute(key, value)
        provider.shutdown()
        summary["traces"] = outcome(exporter.result, recorder)

    json.dump(summary, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
