"""CRQA against PyRQA 8.1.0's plain-Python Baseline and a cell-by-cell reference, plus properties.

Convention differences from PyRQA's Baseline, which the comparisons spell out:
- Theiler band |i - j| < w: Baseline drops it from diagonal lines only; its RR keeps the band (in
  numerator and denominator) and so do its vertical lines. Ours removes the band from the plot.
  So with w > 0 our RR is Baseline's points on diagonals / cells outside the band, and our
  vertical lines are checked against the reference below.
- Baseline's ratios are float32 and nan when empty; ours are float64 and 0.0 when empty.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray

from rapport.analytics.crqa import (
    RqaMeasures,
    RqaParams,
    cross_recurrence,
    crqa,
    crqa_pairs,
    embed,
    flat,
    lag_profile,
    lead,
    leader,
    line_counts,
    persistence,
    zscore,
)

MEASURES = ("rr", "det", "l", "lmax", "entr", "lam", "tt")


def _smooth(rng: np.random.Generator, n: int, phi: float = 0.8) -> NDArray[np.float64]:
    e = rng.standard_normal(n + 50)
    x = np.zeros_like(e)
    for t in range(1, e.size):
        x[t] = phi * x[t - 1] + e[t]
    return x[50:]


# --- an independent reference: the plot cell by cell, lines by walking them (Marwan 2007) ---


def _reference_matrix(x: np.ndarray, y: np.ndarray, p: RqaParams) -> np.ndarray:
    ex, ey = embed(x, p.embedding, p.delay), embed(y, p.embedding, p.delay)
    r = np.zeros((len(ex), len(ey)), dtype=bool)
    for i in range(len(ex)):
        for j in range(len(ey)):
            d = ex[i] - ey[j]
            dist = math.sqrt(sum(v * v for v in d)) if p.metric == "euclidean" else max(abs(d))
            r[i, j] = dist < p.radius and abs(i - j) >= p.theiler
    return r


def _walk(cells: list[bool]) -> list[int]:
    lengths, run = [], 0
    for c in [*cells, False]:
        if c:
            run += 1
        elif run:
            lengths.append(run)
            run = 0
    return lengths


def _reference(x: np.ndarray, y: np.ndarray, p: RqaParams) -> RqaMeasures:
    r = _reference_matrix(x, y, p)
    nx, ny = r.shape
    cells = sum(1 for i in range(nx) for j in range(ny) if abs(i - j) >= p.theiler)
    diag = [n for k in range(-nx + 1, ny) for n in _walk(list(np.diagonal(r, k)))]
    vert = [n for i in range(nx) for n in _walk(list(r[i, :]))]
    points = int(r.sum())
    d_lines = [n for n in diag if n >= p.min_line]
    v_lines = [n for n in vert if n >= p.min_line]
    counts = [d_lines.count(n) / len(d_lines) for n in sorted(set(d_lines))]
    return RqaMeasures(
        rr=points / cells,
        det=sum(d_lines) / points if points else 0.0,
        l=sum(d_lines) / len(d_lines) if d_lines else 0.0,
        lmax=float(max(diag, default=0)),
        entr=-sum(c * math.log(c) for c in counts),
        lam=sum(v_lines) / points if points else 0.0,
        tt=sum(v_lines) / len(v_lines) if v_lines else 0.0,
    )


def _assert_close(got: RqaMeasures, want: RqaMeasures, rel: float = 1e-9) -> None:
    for k in MEASURES:
        assert getattr(got, k) == pytest.approx(getattr(want, k), rel=rel, abs=1e-12), k


# --- PyRQA 8.1.0 Baseline (cross analysis, float64 series so that distances match bit for bit) --

PARAMS = [
    RqaParams(embedding=1, delay=1, radius=0.5),
    RqaParams(embedding=2, delay=1, radius=0.7),
    RqaParams(embedding=3, delay=2, radius=1.0, min_line=3),
    RqaParams(embedding=3, delay=1, radius=0.5, theiler=2),
    RqaParams(embedding=2, delay=2, radius=0.8, theiler=1, metric="maximum"),
    RqaParams(embedding=1, delay=1, radius=0.3, theiler=3, metric="maximum"),
    RqaParams(embedding=3, delay=1, radius=1.2, min_line=4, metric="maximum"),
    RqaParams(embedding=2, delay=1, radius=0.6, theiler=5),
]


def _pyrqa(x: np.ndarray, y: np.ndarray, p: RqaParams) -> Any:
    from pyrqa.analysis_type import Cross  # a pinned dev dependency: missing is a failure
    from pyrqa.metric import EuclideanMetric, MaximumMetric
    from pyrqa.neighbourhood import FixedRadius
    from pyrqa.settings import Settings
    from pyrqa.time_series import TimeSeries
    from pyrqa.variants.rqa.radius.baseline import Baseline

    def ts(s: np.ndarray) -> TimeSeries:
        return TimeSeries(s, embedding_dimension=p.embedding, time_delay=p.delay, dtype=np.float64)

    settings = Settings(
        (ts(x), ts(y)),
        analysis_type=Cross,
        neighbourhood=FixedRadius(p.radius),
        similarity_measure=EuclideanMetric if p.metric == "euclidean" else MaximumMetric,
        theiler_corrector=p.theiler,
    )
    result = Baseline(settings, verbose=False).run()
    result.min_diagonal_line_length = p.min_line
    result.min_vertical_line_length = p.min_line
    return result


def _nan0(v: float) -> float:
    return 0.0 if math.isnan(v) else float(v)


def _data(kind: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    if kind == "walks":  # different lengths: a rectangular plot
        return zscore(np.cumsum(rng.standard_normal(60))), zscore(
            np.cumsum(rng.standard_normal(47))
        )
    base = _smooth(rng, 64)
    return zscore(base[3:]), zscore(base[:-3] + 0.4 * rng.standard_normal(61))


@pytest.mark.parametrize("kind", ["walks", "coupled"])
@pytest.mark.parametrize(
    "p",
    PARAMS,
    ids=lambda p: f"m{p.embedding}d{p.delay}r{p.radius}w{p.theiler}l{p.min_line}{p.metric[:3]}",
)
def test_matches_pyrqa_baseline(p: RqaParams, kind: str) -> None:
    x, y = _data(kind)
    ref = _pyrqa(x, y, p)
    got = crqa(x, y, p)
    diagonal, vertical = line_counts(x, y, p)

    # diagonal lines: the same band, the same lines, exactly
    theirs = np.asarray(ref.diagonal_frequency_distribution, dtype=np.int64)
    assert (diagonal[1:] == theirs[: diagonal.size - 1]).all() and not theirs[
        diagonal.size - 1 :
    ].any()
    assert got.lmax == int(ref.longest_diagonal_line)
    for ours, pyrqa in [
        (got.det, ref.determinism),
        (got.l, ref.average_diagonal_line),
        (got.entr, ref.entropy_diagonal_lines),
    ]:
        assert ours == pytest.approx(_nan0(pyrqa), rel=1e-6, abs=1e-7)

    if p.theiler == 0:
        assert got.rr == pytest.approx(float(ref.recurrence_rate), rel=1e-6)  # float32 there
        v_theirs = np.asarray(ref.vertical_frequency_distribution, dtype=np.int64)
        assert (vertical[1:] == v_theirs[: vertical.size - 1]).all()
        assert not v_theirs[vertical.size - 1 :].any()
        assert got.lam == pytest.approx(_nan0(ref.laminarity), rel=1e-6, abs=1e-7)
        assert got.tt == pytest.approx(_nan0(ref.trapping_time), rel=1e-6, abs=1e-7)
    else:
        nx, ny = x.size - p.span + 1, y.size - p.span + 1
        band = sum(1 for i in range(nx) for j in range(ny) if abs(i - j) < p.theiler)
        # Baseline's RR keeps the band: ours is its points on diagonals over the cells left
        assert got.rr == int(ref.number_of_diagonal_lines_points(1)) / (nx * ny - band)
        everything = cross_recurrence(x, y, p).sum() / (nx * ny)  # the band kept
        assert everything == pytest.approx(float(ref.recurrence_rate), rel=1e-6)
    _assert_close(got, _reference(x, y, p))  # vertical lines with the band: the reference


# --- properties ---

values = st.floats(-3, 3, allow_nan=False, allow_infinity=False)
series = st.lists(values, min_size=8, max_size=30).map(np.array)
params = st.builds(
    RqaParams,
    embedding=st.integers(1, 3),
    delay=st.integers(1, 2),
    radius=st.floats(0.05, 2.5),
    theiler=st.integers(0, 3),
    min_line=st.integers(1, 4),
    metric=st.sampled_from(["euclidean", "maximum"]),
)


@given(series, series, params)
def test_matches_the_cell_by_cell_reference(x: np.ndarray, y: np.ndarray, p: RqaParams) -> None:
    _assert_close(crqa(x, y, p), _reference(x, y, p))
    plot = cross_recurrence(x, y, p)
    i, j = np.indices(plot.shape)
    assert ((plot & (np.abs(i - j) >= p.theiler)) == _reference_matrix(x, y, p)).all()


@given(series, series, params)
def test_measures_are_in_range(x: np.ndarray, y: np.ndarray, p: RqaParams) -> None:
    m = crqa(x, y, p)
    for rate in (m.rr, m.det, m.lam):
        assert 0.0 <= rate <= 1.0
    n = min(x.size, y.size) - p.span + 1
    assert 0 <= m.lmax <= n
    assert m.l == 0.0 or p.min_line <= m.l <= m.lmax
    assert m.tt == 0.0 or m.tt >= p.min_line
    assert m.entr >= 0.0
    assert all(math.isfinite(v) for v in m.as_dict().values())


@given(series, params)
def test_a_series_against_itself_recurs_on_the_main_diagonal(x: np.ndarray, p: RqaParams) -> None:
    p0 = RqaParams(p.embedding, p.delay, p.radius, 0, p.min_line, p.metric)
    n = x.size - p.span + 1
    m = crqa(x, x, p0)
    assert m.lmax == n and m.rr >= 1 / n
    assert m.det > 0 or p.min_line > n
    assert lag_profile(x, x, p0, 0)[0] == 1.0


@given(series, series, params)
def test_swapping_the_series_transposes_the_plot(
    x: np.ndarray, y: np.ndarray, p: RqaParams
) -> None:
    assert (cross_recurrence(y, x, p) == cross_recurrence(x, y, p).T).all()
    xy, yx = crqa(x, y, p), crqa(y, x, p)
    for k in ("rr", "det", "l", "lmax", "entr"):  # diagonals map onto diagonals
        assert getattr(yx, k) == pytest.approx(getattr(xy, k), rel=1e-12), k
    # y's vertical lines are x's horizontal ones: the transposed plot's rows
    plot = _reference_matrix(x, y, p)
    horizontal = [n for j in range(plot.shape[1]) for n in _walk(list(plot[:, j]))]
    assert line_counts(y, x, p)[1].sum() == len(horizontal)
    v_lines = [n for n in horizontal if n >= p.min_line]
    assert yx.tt == pytest.approx(sum(v_lines) / len(v_lines) if v_lines else 0.0)
    assert yx.lam == pytest.approx(sum(v_lines) / plot.sum() if plot.any() else 0.0)


@given(
    st.integers(2, 4).flatmap(
        lambda rows: st.lists(
            st.lists(values, min_size=12, max_size=12), min_size=rows, max_size=rows
        )
    ),
    params,
    st.integers(0, 4),
)
def test_pairs_agree_with_crqa_per_pair(
    rows: list[list[float]], p: RqaParams, max_lag: int
) -> None:
    s = np.array(rows)
    got = crqa_pairs(s, p, max_lag)
    assert got.pairs.tolist() == [[a, b] for a in range(len(rows)) for b in range(a + 1, len(rows))]
    for k, (a, b) in enumerate(got.pairs):
        x, y = zscore(s[a]), zscore(s[b])
        _assert_close(got.measures(k), crqa(x, y, p), rel=1e-12)
        assert got.profile[k] == pytest.approx(lag_profile(x, y, p, max_lag))
        assert got.persistence[k] == pytest.approx(persistence(x, y, p))
        one = lead(x, y, p, max_lag)
        assert (got.lag[k], got.clear[k]) == (one.lag, one.clear)
        assert got.z[k] == pytest.approx(one.z)
    raw = crqa_pairs(s, p, max_lag, standardise=False)
    _assert_close(raw.measures(0), crqa(s[0], s[1], p), rel=1e-12)


@given(st.lists(values, min_size=2, max_size=30))
def test_zscore(x: list[float]) -> None:
    z = zscore(x)
    if max(x) == min(x):
        assert (z == 0).all()  # a constant series carries no expression: all zeros
    elif np.std(x) > 1e-6:
        assert z.mean() == pytest.approx(0, abs=1e-9) and z.std() == pytest.approx(1)


def test_a_series_flat_up_to_rounding_is_constant() -> None:
    # The smoother fed one probability vector gives values a rounding error apart: z-scoring
    # them made spikes of up to 15 SD (and RR 0 against a flat partner).
    jitter = 0.3 + np.array([0.0, 5.551115123125783e-17] * 20)
    assert jitter.std() > 0 and flat(jitter)
    assert (zscore(jitter) == 0).all()
    assert not flat([0.3, 0.31, 0.3, 0.29])
    assert flat([[1.0, 1.0], [1.0, 2.0]]).tolist() == [True, False]


def test_zscore_rows_independently() -> None:
    z = zscore([[1.0, 1.0, 1.0], [1.0, 2.0, 3.0]])
    assert z[0].tolist() == [0.0, 0.0, 0.0]
    assert z[1] == pytest.approx([-math.sqrt(1.5), 0, math.sqrt(1.5)])


def test_embed_is_forward() -> None:
    assert embed([0, 1, 2, 3, 4], 3, 2).tolist() == [[0, 2, 4]]
    assert embed([0, 1, 2, 3], 2, 1).tolist() == [[0, 1], [1, 2], [2, 3]]


def test_radius_is_strict_as_pyrqa() -> None:
    p = RqaParams(embedding=1, radius=0.5)
    assert not cross_recurrence([0.0], [0.5], p)[0, 0]
    assert cross_recurrence([0.0], [np.nextafter(0.5, 0)], p)[0, 0]


def test_empty_measures_are_zero_not_nan() -> None:
    m = crqa([0.0, 0.0, 0.0, 0.0], [9.0, 9.0, 9.0, 9.0], RqaParams(embedding=1))
    assert m == RqaMeasures(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


# --- who leads ---


def _delayed(k: int, n: int = 240, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """x, and y = x k samples later plus noise: x leads by k."""
    rng = np.random.default_rng(seed)
    base = _smooth(rng, n + k)
    return base[k:], base[:-k] + 0.3 * base.std() * rng.standard_normal(n)


@pytest.mark.parametrize("k", [3, 5, 9])
def test_a_known_lead_is_found_with_its_sign(k: int) -> None:
    x, y = _delayed(k)
    p = RqaParams()
    profile = lag_profile(zscore(x), zscore(y), p, 20)
    assert int(np.argmax(profile)) - 20 == k  # y repeats x k samples later
    forward, backward = lead(zscore(x), zscore(y), p, 20), lead(zscore(y), zscore(x), p, 20)
    assert (forward.lag, forward.clear) == (k, True)
    assert (backward.lag, backward.clear) == (-k, True)
    assert crqa_pairs(np.stack([y, x]), p, 20).lag.tolist() == [-k]


def test_independent_series_have_no_clear_leader() -> None:
    rng = np.random.default_rng(11)
    s = np.stack([_smooth(rng, 240) for _ in range(10)])
    got = crqa_pairs(s, RqaParams(), 20)
    assert not got.clear.any(), got.z.max()


def test_leader_needs_a_peak_off_zero_that_stands_out() -> None:
    flat = np.full(9, 0.2)
    assert leader(flat, 4, 100) == leader(flat, 4, 100, 0.5)
    assert (leader(flat, 4, 100).lag, leader(flat, 4, 100).clear) == (0, False)
    mirrored = flat.copy()
    mirrored[[4 - 2, 4 + 2]] = 0.6
    tie = leader(mirrored, 4, 100)
    assert (tie.lag, tie.contrast, tie.clear) == (-2, 0.0, False)
    one_sided = flat.copy()
    one_sided[4 + 2] = 0.6
    sure = leader(one_sided, 4, 1000)
    assert (sure.lag, sure.clear) == (2, True) and sure.contrast == pytest.approx(0.4)
    assert not leader(one_sided, 4, 1000, rho=0.99).clear  # persistent cells: a wider error


# --- validation ---


@pytest.mark.parametrize(
    "kwargs",
    [
        {"embedding": 0},
        {"delay": 0},
        {"radius": 0.0},
        {"radius": math.inf},
        {"theiler": -1},
        {"min_line": 0},
        {"metric": "manhattan"},
    ],
)
def test_bad_params(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must be"):
        RqaParams(**kwargs)  # type: ignore[arg-type]


def test_bad_series() -> None:
    p = RqaParams(embedding=3, delay=2)
    with pytest.raises(ValueError, match="needs at least 5"):
        crqa([1.0, 2.0, 3.0, 4.0], [1.0] * 10, p)
    with pytest.raises(ValueError, match="non-finite"):
        crqa([1.0] * 9 + [math.nan], [1.0] * 10, p)
    with pytest.raises(ValueError, match="max_lag"):
        lag_profile([1.0] * 10, [1.0] * 10, p, 6)
    with pytest.raises(ValueError, match="theiler 9 leaves no cell"):
        crqa([1.0] * 10, [1.0] * 10, RqaParams(theiler=9))
    with pytest.raises(ValueError, match="series 1"):
        crqa_pairs([[1.0] * 10, [1.0] * 9 + [math.inf]], p)
