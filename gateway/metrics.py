"""Prometheus metrics of the gateway (per process)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

registry = CollectorRegistry()


class Requests(Collector):
    """``ttms_http_requests_total`` (by method, route, status) and ``ttms_http_request_seconds``
    (by method, route), counted in plain lists: every request passes here, and
    prometheus_client's own Counter and Histogram take a lock per step, which cost about a
    tenth of a seat-map answer read from memory. One event loop writes them; a scrape reads
    them in the same thread."""

    BUCKETS = (.002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, int], list[int]] = {}
        # Per (method, route): a count per bucket (not cumulative), +Inf last, then the sum.
        self._times: dict[tuple[str, str], list[float]] = {}

    def recorder(self, method: str, route: str, status: int) -> tuple[list[int], list[float]]:
        """The cells one request of this kind adds to: ``record`` them."""
        count = self._counts.setdefault((method, route, status), [0])
        times = self._times.setdefault((method, route), [0] * (len(self.BUCKETS) + 2))
        return count, times

    @classmethod
    def record(cls, cells: tuple[list[int], list[float]], seconds: float) -> None:
        count, times = cells
        count[0] += 1
        times[bisect_left(cls.BUCKETS, seconds)] += 1
        times[-1] += seconds

    def collect(self) -> Iterator:
        total = CounterMetricFamily("ttms_http_requests", "HTTP requests by route and status",
                                    labels=["method", "route", "status"])
        for (method, route, status), (count,) in list(self._counts.items()):
            total.add_metric([method, route, str(status)], count)
        yield total
        latency = HistogramMetricFamily("ttms_http_request_seconds",
                                        "HTTP request latency by route",
                                        labels=["method", "route"])
        for (method, route), times in list(self._times.items()):
            running, buckets = 0, []
            for bound, n in zip((*self.BUCKETS, float("inf")), times[:-1], strict=True):
                running += n
                buckets.append((floatToGoString(bound), running))
            latency.add_metric([method, route], buckets, times[-1])
        yield latency


requests = Requests()
registry.register(requests)
rpc_latency = Histogram("ttms_rpc_seconds", "RPC latency by service and command",
                        ["service", "command"], registry=registry,
                        buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5))
rpc_in_flight = Gauge("ttms_rpc_in_flight", "RPCs waiting for a reply", registry=registry)
holds_refused_at_edge = Counter(
    "ttms_holds_refused_at_edge", "Holds refused by the gateway from its seat maps (seats "
    "taken), without asking ticket_svc", registry=registry)
seat_streams = Gauge("ttms_seat_streams", "Seat-map streams open in this gateway process",
                     registry=registry)
seat_shows = Gauge("ttms_seat_map_shows", "Shows whose seats this gateway process keeps",
                   registry=registry)
