"""The service's Prometheus metrics, one registry per app, summed over workers by /metrics."""

from __future__ import annotations

import os
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess, values


@dataclass(frozen=True)
class Metrics:
    """The service's Prometheus metrics, in a registry of their own (one per app)."""

    registry: CollectorRegistry
    tokens_minted: Counter
    auth_failures: Counter
    attributes_dropped: Counter
    profile_unavailable: Counter
    profile_no_row: Counter
    profile_mismatch: Counter
    rate_limited: Counter
    rate_limit_storage_errors: Counter
    rate_limit_storage_skipped: Counter
    request_latency: Histogram

    @classmethod
    def create(cls) -> Metrics:
        registry = CollectorRegistry(auto_describe=True)
        return cls(
            registry=registry,
            tokens_minted=Counter(
                "identity_tokens_minted", "Messenger tokens minted", ["workspace", "platform"],
                registry=registry,
            ),
            auth_failures=Counter(
                "identity_auth_failures", "Refused authentications",
                ["workspace", "platform", "method", "reason"],
                registry=registry,
            ),
            attributes_dropped=Counter(
                "identity_attributes_dropped", "Invalid attributes left out of tokens",
                ["workspace", "attribute", "reason"], registry=registry,
            ),
            profile_unavailable=Counter(
                "identity_profile_unavailable", "Mints without profile data (database down)",
                ["workspace"], registry=registry,
            ),
            profile_no_row=Counter(
                "identity_profile_no_row", "Mints for users without a profile row",
                ["workspace"], registry=registry,
            ),
            profile_mismatch=Counter(
                "identity_profile_mismatch",
                "Profile rows ignored because their id is not the token's user id",
                ["workspace"], registry=registry,
            ),
            rate_limited=Counter(
                "identity_rate_limited", "Requests refused by the rate limiter",
                ["scope", "platform"],
                registry=registry,
            ),
            rate_limit_storage_errors=Counter(
                "identity_rate_limit_storage_errors",
                "Rate-limit storage failures (Redis down); on_storage_error decided the outcome",
                registry=registry,
            ),
            rate_limit_storage_skipped=Counter(
                "identity_rate_limit_storage_skipped",
                "Rate-limit checks that skipped the storage after a failure (circuit breaker "
                "open); on_storage_error decided the outcome",
                registry=registry,
            ),
            request_latency=Histogram(
                "identity_request_seconds", "Request latency", ["endpoint", "method", "status"],
                registry=registry,
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            ),
        )  # fmt: skip

    def count_profile(self, workspace: str, outcome: str) -> None:
        """Count a mint whose profile step did not find the user's own row."""
        counter = {
            "unavailable": self.profile_unavailable,
            "no_row": self.profile_no_row,
            "mismatch": self.profile_mismatch,
        }.get(outcome)
        if counter is not None:
            counter.labels(workspace).inc()


def use_multiprocess_metrics() -> None:
    """In a gunicorn worker with $PROMETHEUS_MULTIPROC_DIR set, keep metric values in
    the shared files, so that /metrics can sum every worker.

    prometheus_client picks where values live when it is first imported, which
    in the CLI happens before the directory is chosen; pick again, before any
    metric of this worker's app exists.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def exposition() -> CollectorRegistry | None:
    """The registry to expose instead of the app's own: every worker's, in multiprocess mode."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR") or values.ValueClass is values.MutexValue:
        return None
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry
