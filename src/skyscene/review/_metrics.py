"""Request counters and latency histograms in the Prometheus text format (version 0.0.4).

Written here rather than with ``prometheus_client`` (not a dependency): four metric
families, one lock, no global registry. Each worker process keeps its own figures.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

__all__ = ["LATENCY_BUCKETS", "Metrics"]

#: Upper bounds (seconds) of the request latency histogram's buckets.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Metrics:
    """Thread-safe counters of one worker: requests by method, route template and status;
    latency histogram by method and route; triplets scored."""

    def __init__(self, buckets: Sequence[float] = LATENCY_BUCKETS):
        self.buckets = tuple(float(b) for b in buckets)
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = {}
        self._latency: dict[tuple[str, str], list[float]] = {}  # bucket counts, then sum, count
        self.scores_served: int = 0

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one request and its latency."""
        key = (method, route)
        with self._lock:
            rkey = (method, route, str(int(status)))
            self._requests[rkey] = self._requests.get(rkey, 0) + 1
            row = self._latency.get(key)
            if row is None:
                row = self._latency[key] = [0.0] * (len(self.buckets) + 2)
            for i, bound in enumerate(self.buckets):
                if seconds <= bound:
                    row[i] += 1
            row[-2] += seconds
            row[-1] += 1

    def add_scores(self, n: int) -> None:
        with self._lock:
            self.scores_served += int(n)

    def requests(self, method: str, route: str, status: int) -> int:
        """Requests counted for one (method, route, status)."""
        with self._lock:
            return self._requests.get((method, route, str(int(status))), 0)

    def exposition(self, *, queue_length: int | None = None) -> str:
        """The metrics as Prometheus text (``text/plain; version=0.0.4``)."""
        with self._lock:
            requests = sorted(self._requests.items())
            latency = sorted((k, list(v)) for k, v in self._latency.items())
            scores = self.scores_served
        lines = [
            "# HELP skyscene_requests_total HTTP requests by method, route and status.",
            "# TYPE skyscene_requests_total counter",
        ]
        for (method, route, status), count in requests:
            lines.append(
                f'skyscene_requests_total{{method="{_label(method)}",route="{_label(route)}",'
                f'status="{status}"}} {count}'
            )
        lines += [
            "# HELP skyscene_request_seconds HTTP request latency, seconds.",
            "# TYPE skyscene_request_seconds histogram",
        ]
        for (method, route), row in latency:
            labels = f'method="{_label(method)}",route="{_label(route)}"'
            for bound, n in zip(self.buckets, row, strict=False):
                lines.append(
                    f'skyscene_request_seconds_bucket{{{labels},le="{_number(bound)}"}} '
                    f"{_number(n)}"
                )
            lines.append(
                f'skyscene_request_seconds_bucket{{{labels},le="+Inf"}} {_number(row[-1])}'
            )
            lines.append(f"skyscene_request_seconds_sum{{{labels}}} {row[-2]!r}")
            lines.append(f"skyscene_request_seconds_count{{{labels}}} {_number(row[-1])}")
        lines += [
            "# HELP skyscene_scores_served_total Triplets scored through /api/score.",
            "# TYPE skyscene_scores_served_total counter",
            f"skyscene_scores_served_total {scores}",
        ]
        if queue_length is not None:
            lines += [
                "# HELP skyscene_queue_length Candidates that nobody has labelled yet.",
                "# TYPE skyscene_queue_length gauge",
                f"skyscene_queue_length {int(queue_length)}",
            ]
        return "\n".join(lines) + "\n"
