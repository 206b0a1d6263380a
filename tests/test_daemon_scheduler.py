"""The scheduler's arithmetic: intervals, jitter, backoff, parking and push wake-ups."""

from __future__ import annotations

from keepwarm.daemon.scheduler import MAX_BACKOFF, Scheduler


def scheduler(jitter: float = 0.0, rand: float = 0.5) -> Scheduler:
    return Scheduler(jitter=jitter, backoff_min=60.0, rand=lambda: rand)


def test_new_accounts_are_due_at_once_and_never_twice_at_the_same_time() -> None:
    s = scheduler()
    s.keep(["a", "b"], now=100.0)
    assert s.due(100.0) == ["a", "b"]
    s.started("a")
    assert s.due(100.0) == ["b"]
    assert s.running() == ["a"]


def test_a_good_poll_waits_its_interval_plus_a_share_of_jitter() -> None:
    s = scheduler(jitter=0.1, rand=0.5)
    s.keep(["a"], now=0.0)
    s.started("a")
    assert s.finished("a", 10.0, ok=True, interval=300.0, transient=False) == 315.0
    assert s.due(324.0) == []
    assert s.due(325.0) == ["a"]


def test_network_failures_back_off_exponentially_up_to_an_hour_then_reset() -> None:
    s = scheduler()
    s.keep(["a"], now=0.0)
    waits = []
    for _ in range(8):
        s.started("a")
        waits.append(s.finished("a", 0.0, ok=False, interval=300.0, transient=True))
    assert waits == [60, 120, 240, 480, 960, 1920, MAX_BACKOFF, MAX_BACKOFF]
    s.started("a")
    assert s.finished("a", 0.0, ok=True, interval=300.0, transient=False) == 300.0
    s.started("a")
    assert s.finished("a", 0.0, ok=False, interval=300.0, transient=True) == 60.0


def test_a_parked_account_is_never_due_until_unparked() -> None:
    s = scheduler()
    s.keep(["a"], now=0.0)
    s.started("a")
    s.park("a", ("fingerprint", 1), "token revoked")
    assert s.due(1e9) == []
    assert s.parked() == {"a": ("fingerprint", 1)}
    assert not s.wake("a", 5.0)  # push does not unpark either
    s.unpark("a", 7.0)
    assert s.due(7.0) == ["a"]


def test_push_wakes_a_waiting_account_but_never_cuts_a_backoff_short() -> None:
    s = scheduler()
    s.keep(["a", "b"], now=0.0)
    for name in ("a", "b"):
        s.started(name)
    s.finished("a", 0.0, ok=True, interval=3600.0, transient=False)
    s.finished("b", 0.0, ok=False, interval=3600.0, transient=True)
    assert s.wake("a", 5.0)
    assert not s.wake("b", 5.0)
    assert s.due(5.0) == ["a"]


def test_accounts_leaving_the_config_are_forgotten_once_they_finish() -> None:
    s = scheduler()
    s.keep(["a", "b"], now=0.0)
    s.started("b")
    s.keep(["a"], now=1.0)
    assert s.running() == ["b"]  # still polling: kept until it ends
    assert s.finished("b", 2.0, ok=True, interval=300.0, transient=False) == 300.0
    s.keep(["a"], now=3.0)
    assert s.running() == []
    assert s.due(3.0) == ["a"]
