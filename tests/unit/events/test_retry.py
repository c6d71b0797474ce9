import random
from datetime import UTC, datetime, timedelta

import pytest

from rapport.events.retry import RetryPolicy, parse_retry_after

SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
NOW = datetime(2015, 10, 21, 7, 0, 0, tzinfo=UTC)


def test_default_schedule_is_the_standard_webhooks_one() -> None:
    policy = RetryPolicy()
    assert policy.schedule_s == SCHEDULE
    assert policy.jitter == 0.2
    assert policy.max_retry_after_s == 36000


def test_schedule_is_followed_within_jitter_over_many_seeds() -> None:
    policy = RetryPolicy()
    seen_spread: dict[int, list[float]] = {i: [] for i in range(len(SCHEDULE))}
    for seed in range(500):
        rng = random.Random(seed)
        for attempt, base in enumerate(SCHEDULE):
            delay = policy.next_delay(attempt, retry_after=None, rng=rng)
            assert delay is not None
            assert base * 0.8 <= delay <= base * 1.2
            seen_spread[attempt].append(delay)
        assert policy.next_delay(len(SCHEDULE), retry_after=None, rng=rng) is None
    assert set(seen_spread[0]) == {0}
    for attempt in range(1, len(SCHEDULE)):
        delays = seen_spread[attempt]
        # Jitter actually spreads the delays across most of the ±20 % band.
        assert min(delays) < SCHEDULE[attempt] * 0.85
        assert max(delays) > SCHEDULE[attempt] * 1.15


def test_no_jitter_is_exact_and_seeded_rng_is_reproducible() -> None:
    policy = RetryPolicy(jitter=0)
    rng = random.Random(1)
    assert [policy.next_delay(i, retry_after=None, rng=rng) for i in range(9)] == [
        *SCHEDULE,
        None,
    ]
    jittered = RetryPolicy()
    a = [jittered.next_delay(i, retry_after=None, rng=random.Random(7)) for i in range(8)]
    b = [jittered.next_delay(i, retry_after=None, rng=random.Random(7)) for i in range(8)]
    assert a == b


def test_exhaustion_and_bad_attempts() -> None:
    policy = RetryPolicy(schedule_s=(0, 10))
    rng = random.Random(0)
    assert policy.next_delay(2, retry_after=None, rng=rng) is None
    assert policy.next_delay(50, retry_after=1000, rng=rng) is None
    with pytest.raises(ValueError):
        policy.next_delay(-1, retry_after=None, rng=rng)


def test_retry_after_is_a_lower_bound_and_capped() -> None:
    policy = RetryPolicy()
    for seed in range(50):
        rng = random.Random(seed)
        assert policy.next_delay(1, retry_after=120, rng=rng) == 120
        # Below the schedule it changes nothing.
        delay = policy.next_delay(3, retry_after=10, rng=random.Random(seed))
        assert delay == policy.next_delay(3, retry_after=None, rng=random.Random(seed))
        # A huge Retry-After is capped at max_retry_after_s, not the schedule ceiling.
        assert policy.next_delay(1, retry_after=10**9, rng=rng) == 36000
        assert policy.next_delay(1, retry_after=float("inf"), rng=rng) == 36000
    capped = RetryPolicy(max_retry_after_s=60)
    assert capped.next_delay(1, retry_after=3600, rng=random.Random(0)) == 60
    # The cap bounds Retry-After only; a longer jittered schedule delay still stands.
    late = capped.next_delay(4, retry_after=3600, rng=random.Random(0))
    assert late is not None and late >= 7200 * 0.8
    assert policy.next_delay(0, retry_after=-5, rng=random.Random(0)) == 0


@pytest.mark.parametrize(
    "value, expected",
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("-30", 0.0),
        ("1.5", 1.5),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 28 * 60.0),
        ("Wed, 21 Oct 2015 06:28:00 GMT", 0.0),
        ("Wednesday, 21-Oct-15 07:28:00 GMT", 28 * 60.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("12 parsecs", None),
        ("nan", None),
        ("inf", None),
        ("1_000", None),
        ("Wed, 99 Foo 2015 07:28:00 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_parse_retry_after_with_naive_now_is_utc() -> None:
    naive = NOW.replace(tzinfo=None) + timedelta(minutes=8)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=naive) == 20 * 60.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"schedule_s": ()},
        {"schedule_s": (0, -1)},
        {"schedule_s": (0, 10, 5)},
        {"schedule_s": (0, float("nan"))},
        {"jitter": -0.1},
        {"jitter": 1.0},
        {"max_retry_after_s": -1},
    ],
)
def test_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_equal_steps_are_allowed() -> None:
    assert (
        RetryPolicy(schedule_s=(5, 5, 5), jitter=0).next_delay(
            2, retry_after=None, rng=random.Random(0)
        )
        == 5
    )
