"""Prometheus metrics, one registry per app so several apps can live in one process."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "genway_http_requests_total",
            "HTTP requests by route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "genway_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

        self.ratelimit_errors = Counter(
            "genway_ratelimit_storage_errors_total",
            "Rate-limit storage failures (requests let through when failing open)",
            registry=self.registry,
        )

        self.organizations = Gauge("genway_organizations", "Organizations", registry=self.registry)
        self.users = Gauge("genway_users", "Users", registry=self.registry)
        self.jobs = Gauge(
            "genway_jobs", "Jobs by kind and status", ["kind", "status"], registry=self.registry
        )
        self.queue_depth = Gauge("genway_queue_depth", "Queued jobs", registry=self.registry)
        self.oldest_queued = Gauge(
            "genway_oldest_queued_age_seconds",
            "Age of the oldest queued job",
            registry=self.registry,
        )
        self.finished_hour = Gauge(
            "genway_jobs_finished_last_hour",
            "Jobs finished in the last hour",
            registry=self.registry,
        )
        self.error_rate = Gauge(
            "genway_job_error_rate_last_hour",
            "Failed share of jobs finished in the last hour",
            registry=self.registry,
        )

    def set_service_stats(self, stats: dict[str, Any]) -> None:
        """Mirror `/api/v1/admin/stats` (computed at scrape time)."""
        self.organizations.set(stats["organizations"])
        self.users.set(stats["users"])
        self.jobs.clear()
        for kind, statuses in stats["jobs_by_kind"].items():
            for status, count in statuses.items():
                self.jobs.labels(kind, status).set(count)
        self.queue_depth.set(stats["queue_depth"])
        self.oldest_queued.set(stats["oldest_queued_age_s"])
        self.finished_hour.set(stats["finished_last_hour"])
        self.error_rate.set(stats["error_rate_last_hour"])

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)
