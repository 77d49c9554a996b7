"""Prometheus metrics of the gateway (per process)."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

registry = CollectorRegistry()

requests = Counter("ttms_http_requests_total", "HTTP requests by route and status",
                   ["method", "route", "status"], registry=registry)
latency = Histogram("ttms_http_request_seconds", "HTTP request latency by route",
                    ["method", "route"], registry=registry,
                    buckets=(.002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
rpc_latency = Histogram("ttms_rpc_seconds", "RPC latency by service and command",
                        ["service", "command"], registry=registry,
                        buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5))
rpc_in_flight = Gauge("ttms_rpc_in_flight", "RPCs waiting for a reply", registry=registry)
seat_streams = Gauge("ttms_seat_streams", "Seat-map streams open in this gateway process",
                     registry=registry)
seat_shows = Gauge("ttms_seat_map_shows", "Shows whose seats this gateway process keeps",
                   registry=registry)
