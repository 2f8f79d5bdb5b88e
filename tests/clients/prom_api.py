#!/usr/bin/env python3
"""Calls the Prometheus HTTP API as a client application would, with the PyPI library
prometheus-api-client (pinned and installed into .venv by `make prom-api-client`, part of
`make setup`): an instant query, label values, series, targets and metric metadata.

    TOLLGATE_TOKEN=... prom_api.py --url http://127.0.0.1:10000 --query fed_probe \
        --label kube_namespace --metric fed_probe

The token is read from the environment (never argv, which process listings show) and sent as
`authorization: Bearer <token>`. Prints one JSON object on stdout and exits 0 whatever the
calls' outcome, one entry per call:

    {"custom_query": {"ok": true, "status": 200, "result": [...]},
     "get_targets": {"ok": false, "status": 403, "error": "...", "body": {...}}, ...}

`status` is that of the HTTP response the library got (null when it got none), `body` the
response's JSON (or text) when a call failed. The library returns nothing from `get_series`
(0.7.2 drops the parsed answer), so its `result` is the `data` of the HTTP response itself.
The library retries only 408, 429 and 5xx, so a 403 fails at once; --timeout bounds each call.
"""

import argparse
import json
import os
import sys
from datetime import datetime, timedelta, timezone

import requests
from prometheus_api_client import PrometheusConnect


class Recorder:
    """A requests session whose response hook keeps the last HTTP answer."""

    def __init__(self):
        self.session = requests.Session()
        self.response = None
        self.session.hooks["response"].append(self._hook)

    def _hook(self, response, *args, **kwargs):
        self.response = response
        return response

    def status(self):
        return None if self.response is None else self.response.status_code

    def body(self):
        if self.response is None:
            return None
        try:
            return self.response.json()
        except ValueError:
            return self.response.text[:2000]


def call(recorder, function, *args, **kwargs):
    recorder.response = None
    try:
        result = function(*args, **kwargs)
    except Exception as error:  # the library raises its own exception and requests' ones
        return {
            "ok": False,
            "status": recorder.status(),
            "error": f"{type(error).__name__}: {error}"[:2000],
            "body": recorder.body(),
        }
    return {"ok": True, "status": recorder.status(), "result": result}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the Prometheus API's base URL")
    parser.add_argument("--query", default="fed_probe", help="the instant query")
    parser.add_argument("--label", default="kube_namespace", help="whose values to list")
    parser.add_argument("--metric", default="fed_probe", help="series selector and metadata")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per call")
    parser.add_argument("--token-env", default="TOLLGATE_TOKEN", help="variable holding the token")
    args = parser.parse_args()

    headers = {}
    token = os.environ.get(args.token_env)
    if token:
        headers["authorization"] = f"Bearer {token}"
    recorder = Recorder()
    prom = PrometheusConnect(
        url=args.url.rstrip("/"),
        headers=headers,
        session=recorder.session,
        timeout=args.timeout,
    )
    now = datetime.now(timezone.utc)
    summary = {}
    summary["custom_query"] = call(recorder, prom.custom_query, args.query)
    summary["get_label_values"] = call(recorder, prom.get_label_values, args.label)
    series = call(
        recorder,
        prom.get_series,
        now - timedelta(minutes=10),
        now + timedelta(minutes=1),
        params={"match[]": args.metric},
    )
    if series["ok"] and series["result"] is None:
        body = recorder.body()
        series["result"] = body.get("data") if isinstance(body, dict) else None
    summary["get_series"] = series
    summary["get_targets"] = call(recorder, prom.get_targets)
    summary["get_metric_metadata"] = call(recorder, prom.get_metric_metadata, args.metric)
    prom.close()
    json.dump(summary, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
