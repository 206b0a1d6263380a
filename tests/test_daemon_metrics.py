"""The Prometheus endpoint: what the service records is what a scrape over HTTP reads, on
loopback only, with the config key named when the address is refused."""

from __future__ import annotations

import os
import socket
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from keepwarm.config.load import parse
from keepwarm.daemon.metrics import Metrics, ProcessMetrics
from keepwarm.errors import ConfigError

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(1_800_000_000.0)


@pytest.fixture
def metrics(clock: Clock) -> Iterator[Metrics]:
    served = Metrics(clock=clock)
    yield served
    served.stop()


def scrape(host: str, port: int) -> tuple[str, Samples]:
    shown = f"[{host}]" if ":" in host else host
    with urllib.request.urlopen(f"http://{shown}:{port}/metrics", timeout=10) as answer:
        assert answer.status == 200
        content_type = answer.headers["Content-Type"]
        text = answer.read().decode()
    assert content_type.startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_what_the_service_records_is_what_a_scrape_reads(metrics: Metrics, clock: Clock) -> None:
    host, port = metrics.start("127.0.0.1:0")
    assert (host, port != 0) == ("127.0.0.1", True)
    home, cal = {"account": "home", "kind": "imap"}, {"account": "cal", "kind": "caldav"}
    metrics.up()
    metrics.account_lag("cal", 7200)  # from the store at start: synced two hours ago
    metrics.poll_finished("home", "imap", True, None, new=3, items=40, seconds=0.7)
    clock.now += 300
    metrics.poll_finished("home", "imap", True, None, new=1, items=2, seconds=0.2)
    clock.now += 60
    metrics.poll_finished("cal", "caldav", False, "transient", new=0, items=0, seconds=30.0)
    metrics.poll_finished("cal", "caldav", False, "auth", new=0, items=0, seconds=1.5)
    metrics.touchpoints_total(12_345)
    metrics.digest_sent(datetime(2027, 1, 4, 8, 0, tzinfo=UTC))
    clock.now += 40

    _, samples = scrape(host, port)
    assert value(samples, "keepwarm_up") == 1
    assert value(samples, "keepwarm_syncs_total", **home) == 2
    assert value(samples, "keepwarm_syncs_total", **cal) == 2
    assert value(samples, "keepwarm_sync_errors_total", **home, error_kind="transient") == 0
    assert value(samples, "keepwarm_sync_errors_total", **cal, error_kind="transient") == 1
    assert value(samples, "keepwarm_sync_errors_total", **cal, error_kind="auth") == 1
    assert value(samples, "keepwarm_sync_errors_total", **cal, error_kind="error") == 0
    assert value(samples, "keepwarm_touchpoints_new_total", **home) == 4
    assert value(samples, "keepwarm_items_read_total", **home) == 42
    assert value(samples, "keepwarm_sync_duration_seconds_count", **home) == 2
    assert value(samples, "keepwarm_sync_duration_seconds_sum", **home) == pytest.approx(0.9)
    assert value(samples, "keepwarm_sync_duration_seconds_bucket", **home, le="0.5") == 1
    assert value(samples, "keepwarm_sync_duration_seconds_bucket", **cal, le="+Inf") == 2
    assert value(samples, "keepwarm_account_failing", **home) == 0
    assert value(samples, "keepwarm_account_failing", **cal) == 1
    # Lag is measured at scrape time from the last good sync: it grows while cal fails.
    assert value(samples, "keepwarm_account_lag_seconds", account="home") == 100
    assert value(samples, "keepwarm_account_lag_seconds", account="cal") == 7200 + 400
    synced = value(samples, "keepwarm_account_last_sync_timestamp_seconds", account="home")
    assert synced == 1_800_000_300
    assert value(samples, "keepwarm_touchpoints") == 12_345
    sent = value(samples, "keepwarm_digest_last_sent_timestamp_seconds")
    assert sent == datetime(2027, 1, 4, 8, 0, tzinfo=UTC).timestamp()
    assert "keepwarm_build_info" in {name for name, _ in samples}


def test_a_fresh_service_reports_no_sync_and_no_digest_rather_than_zero(metrics: Metrics) -> None:
    _, samples = scrape(*metrics.start("127.0.0.1:0"))
    names = {name for name, _ in samples}
    assert value(samples, "keepwarm_up") == 0
    assert "keepwarm_digest_last_sent_timestamp_seconds" not in names
    assert "keepwarm_account_lag_seconds" not in names


def test_each_metrics_has_its_own_registry(clock: Clock) -> None:
    first, second = Metrics(clock=clock), Metrics(clock=clock)
    first.poll_finished("home", "imap", True, None, new=1, items=1, seconds=0.1)
    try:
        _, samples = scrape(*second.start("127.0.0.1:0"))
    finally:
        second.stop()
    assert ("keepwarm_syncs_total", frozenset({("account", "home"), ("kind", "imap")})) not in (
        samples
    )


def test_ipv6_loopback_is_served() -> None:
    metrics = Metrics()
    try:
        host, port = metrics.start("[::1]:0")
        assert host == "::1"
        text, _ = scrape(host, port)
    finally:
        metrics.stop()
    assert "keepwarm_up 0.0" in text


def test_stop_closes_the_port_and_start_moves_it(metrics: Metrics) -> None:
    _, first = metrics.start("127.0.0.1:0")
    _, second = metrics.start("127.0.0.1:0")
    scrape("127.0.0.1", second)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", first), timeout=2).close()
    metrics.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", second), timeout=2).close()


@pytest.mark.parametrize(
    ("listen", "problem"),
    [
        ("0.0.0.0:9464", "must be a loopback address like 127.0.0.1 (the endpoint has no"),
        ("192.0.2.7:9464", '(the endpoint has no authentication), got "192.0.2.7"'),
        ("[::]:9464", "must be a loopback address"),
        ("9464", 'expected "host:port" like "127.0.0.1:9464", got "9464"'),
        ("127.0.0.1:99999", 'expected "host:port"'),
        ("127.0.0.1:http", 'expected "host:port"'),
    ],
)
def test_an_address_off_loopback_or_malformed_is_refused_naming_the_key(
    metrics: Metrics, listen: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        metrics.start(listen)
    (said,) = raised.value.problems
    assert said.startswith("daemon.metrics_listen: ")
    assert problem in said
    # The config check says the same when the file is loaded, before the service starts.
    with pytest.raises(ConfigError) as loaded:
        parse(f'[daemon]\nmetrics_listen = "{listen}"\n')
    assert loaded.value.problems == raised.value.problems


def test_a_port_in_use_is_an_error_naming_the_key(metrics: Metrics) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        with pytest.raises(ConfigError, match=r"daemon\.metrics_listen: cannot listen on") as info:
            metrics.start(f"127.0.0.1:{port}")
    finally:
        taken.close()
    assert "in use" in str(info.value)


@pytest.mark.parametrize("listen", ["", "127.0.0.1:9464", "localhost:9464", "[::1]:9464"])
def test_loopback_addresses_and_off_pass_the_config_check(listen: str) -> None:
    config = parse(f'[daemon]\nmetrics_listen = "{listen}"\n')
    assert config.daemon.metrics_listen == listen


def test_process_metrics_need_no_proc_stat_which_the_unit_hides(tmp_path: Path) -> None:
    """ProcSubset=pid leaves /proc/self but hides /proc/stat, where the boot time is read."""
    with open("/proc/stat") as stat:  # readable here, to check against
        btime = next(float(line.split()[1]) for line in stat if line.startswith("btime "))
    with open("/proc/self/stat") as own:
        ticks = float(own.read().rsplit(")", 1)[1].split()[19])
    started = btime + ticks / os.sysconf("SC_CLK_TCK")
    hidden = tmp_path / "proc"  # what the service sees: its own process, nothing else
    hidden.mkdir()
    (hidden / "self").symlink_to("/proc/self")
    found = {s.name: s.value for m in ProcessMetrics(proc=str(hidden), registry=None).collect()
             for s in m.samples}  # fmt: skip
    assert found["process_start_time_seconds"] == pytest.approx(started, abs=1.5)
    assert found["process_resident_memory_bytes"] > 10_000_000
    assert found["process_open_fds"] > 3


def test_the_endpoint_serves_the_process_metrics(metrics: Metrics) -> None:
    _, samples = scrape(*metrics.start("127.0.0.1:0"))
    assert value(samples, "process_start_time_seconds") > 1_600_000_000
