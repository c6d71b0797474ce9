"""Cross-recurrence quantification analysis (CRQA) of two expression series, and who leads whom.

Pure numpy, vectorised over matrix cells and, in `crqa_pairs`, over participant pairs. The
measures follow Marwan, Romano, Thiel, Kurths, "Recurrence plots for the analysis of complex
systems", Phys. Rep. 438 (2007), with PyRQA 8.1.0's conventions where the paper leaves a choice:

- Embedding is forward: vector i is (x[i], x[i+d], ..., x[i+(m-1)d]).
- Cell (i, j) pairs x's vector i with y's vector j; it is recurrent iff distance < radius
  (strict, as PyRQA's FixedRadius). Metric: Euclidean (default, as PyRQA and most CRQA
  literature) or maximum norm (each coordinate within the radius, so the radius keeps
  its meaning across embedding dimensions).
- A diagonal line runs along (i+k, j+k); a vertical line along (i, j+k) for a fixed x vector i
  (Marwan's CR_{i,j}, PyRQA's vertical lines). Lines shorter than `min_line` count as recurrent
  points but not as lines; the same `min_line` applies to diagonal and vertical lines.
- Theiler window w: the symmetric band |i - j| < w is removed from the plot before any measure
  (RR's numerator and denominator, diagonal and vertical lines; the band breaks vertical lines).
  PyRQA's Baseline removes the same band from diagonal lines only (its RR and vertical lines keep
  it); its OpenCL kernels drop only 0 <= i - j < w in cross analysis and compute in float32.
- A ratio with nothing to divide by is 0.0, never nan, so measures always serialise to JSON.

The lag profile (diagonal-wise recurrence rate) ignores the Theiler window: lag 0 must count.
Lag tau = j - i pairs x's vector i with y's vector i + tau: a peak at tau > 0 means y repeats x
tau samples later, so x leads.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rapport.analytics.rqa_params import Metric as Metric
from rapport.analytics.rqa_params import RqaParams as RqaParams

F64 = NDArray[np.float64]

# The default threshold on Lead.z. Over pairs of independent AR(1) series (phi 0.5..0.95,
# n 120..960, radius 0.3..1, embedding 1..3, max_lag 8..20) 0.1 % reached it, at worst 3.4 %
# (radius 0.3, embedding 3, n 120: the error is poor at low RR); a copy delayed 6 samples with
# noise of half its SD reached it in 57 % of trials at n 240 (63 % at threshold 5). On pairs of
# independent live-like signals (smoothed expression, 4 Hz, 60 s, the live defaults) a review
# measured 1.4-3 % false leaders: treat a single pair's lead as a hint, the room's share as the
# signal.
LEAD_Z = 6.0

# Cells per chunk in crqa_pairs (tuned at n = 240): big enough to amortise the calls, small
# enough for the float matrices to stay in cache.
_CHUNK_CELLS = 1 << 19




@dataclass(frozen=True, slots=True)
class RqaMeasures:
    """rr: recurrent cells / cells outside the Theiler band.
    det: points on diagonal lines >= lmin / recurrent points (0.0 when there are none).
    l: mean length of diagonal lines >= lmin (0.0 when there are none).
    lmax: longest diagonal line of any length, as PyRQA (0.0 when no recurrent point).
    entr: Shannon entropy (natural log) of the length distribution of diagonal lines >= lmin
    (0.0 when there are none).
    lam: points on vertical lines >= lmin / recurrent points (0.0 when there are none).
    tt: mean length of vertical lines >= lmin, the trapping time (0.0 when there are none)."""

    rr: float
    det: float
    l: float  # noqa: E741 (Marwan's name)
    lmax: float
    entr: float
    lam: float
    tt: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Lead:
    """lag: the lag profile's peak in samples (ties: the lag nearest 0, then the negative one);
    positive = x leads y (y repeats x `lag` samples later), negative = y leads x.
    peak: the recurrence rate at lag. contrast: peak minus the larger of lag 0's and the mirrored
    lag's rates. z: contrast in standard errors of one diagonal's rate, taking its cells as a
    binary AR(1) sequence: se = sqrt(q (1 - q) / cells * (1 + rho) / (1 - rho)), q the profile's
    mean, cells those on the peak's diagonal, rho the persistence (see `persistence`).
    clear: lag != 0 and z >= threshold (default LEAD_Z)."""

    lag: int
    clear: bool
    peak: float
    contrast: float
    z: float


@dataclass(frozen=True, slots=True)
class PairwiseRqa:
    """crqa_pairs' result: row k is pair (pairs[k, 0], pairs[k, 1]), x = the first series.
    Measures as RqaMeasures, one array each; profile[k] covers lags -max_lag..max_lag;
    persistence, lag, clear and z as in `persistence` and Lead."""

    pairs: NDArray[np.intp]
    rr: F64
    det: F64
    l: F64  # noqa: E741
    lmax: F64
    entr: F64
    lam: F64
    tt: F64
    profile: F64
    persistence: F64
    lag: NDArray[np.int64]
    clear: NDArray[np.bool_]
    z: F64

    def measures(self, k: int) -> RqaMeasures:
        return RqaMeasures(
            *(float(getattr(self, f)[k]) for f in ("rr", "det", "l", "lmax", "entr", "lam", "tt"))
        )


FLAT = 1e-9
"""A series whose std is under this share of its largest magnitude (at least 1) is constant up to
float rounding: standardising it would blow rounding up into spikes."""


def flat(x: ArrayLike) -> NDArray[np.bool_]:
    """Whether each series (along the last axis) is constant up to float rounding."""
    a = np.asarray(x, dtype=np.float64)
    scale = np.maximum(1.0, np.abs(a).max(axis=-1))
    return np.asarray(~(a.std(axis=-1) > FLAT * scale))


def zscore(x: ArrayLike) -> F64:
    """(x - mean) / std (population std) along the last axis; a constant series (or row, up to
    float rounding: `flat`) becomes all zeros: it has no expression to compare, so it is
    recurrent with nothing but zeros. Callers comparing people leave flat series out."""
    a = np.asarray(x, dtype=np.float64)
    mean = a.mean(axis=-1, keepdims=True)
    std = a.std(axis=-1, keepdims=True)
    constant = flat(a)[..., None]
    return np.where(constant, 0.0, (a - mean) / np.where(constant, 1.0, std))


def embed(x: ArrayLike, embedding: int, delay: int) -> F64:
    """Forward delay embedding: row i = (x[i], x[i+d], ..., x[i+(m-1)d]); n - (m-1)d rows."""
    a = _series(x, "x", RqaParams(embedding=embedding, delay=delay))
    n = a.size - (embedding - 1) * delay
    return np.stack([a[k * delay : k * delay + n] for k in range(embedding)], axis=1)


def cross_recurrence(x: ArrayLike, y: ArrayLike, params: RqaParams) -> NDArray[np.bool_]:
    """The cross-recurrence matrix CR[i, j] = dist(x_i, y_j) < radius, shape (Nx, Ny), with no
    Theiler band removed (crqa removes |i - j| < theiler)."""
    xs, ys = _series(x, "x", params), _series(y, "y", params)
    block = _recurrence(xs[None], ys[None], params)
    return block[0, :-1, :-1].copy()


def crqa(x: ArrayLike, y: ArrayLike, params: RqaParams | None = None) -> RqaMeasures:
    """CRQA measures of x against y (series as given: standardise with zscore first if their
    scales differ). x and y may differ in length."""
    p = params or RqaParams()
    xs, ys = _series(x, "x", p), _series(y, "y", p)
    result = _analyse(_recurrence(xs[None], ys[None], p), p, 0)
    return RqaMeasures(*(float(v[0]) for v in result.measures))


def line_counts(
    x: ArrayLike, y: ArrayLike, params: RqaParams | None = None
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Diagonal and vertical line counts by length (index = length, index 0 unused) outside the
    Theiler band, lines of every length (min_line does not apply): P(l) and P(v) in Marwan."""
    p = params or RqaParams()
    xs, ys = _series(x, "x", p), _series(y, "y", p)
    result = _analyse(_recurrence(xs[None], ys[None], p), p, 0)
    return result.diagonal[0].astype(np.int64), result.vertical[0].astype(np.int64)


def lag_profile(x: ArrayLike, y: ArrayLike, params: RqaParams, max_lag: int) -> F64:
    """Diagonal-wise recurrence rate for lags -max_lag..max_lag: entry max_lag + tau is the
    fraction of recurrent cells (i, i + tau), x's vector i against y's vector i + tau."""
    return _one_pair(x, y, params, max_lag).profile.reshape(-1)


def persistence(x: ArrayLike, y: ArrayLike, params: RqaParams) -> float:
    """How much a recurrent cell predicts its diagonal successor, over the whole plot:
    rho = (p11 - q) / (1 - q), q the recurrence rate, p11 = P(next on the diagonal recurrent |
    recurrent) = 1 - lines / points with lines of any length; clipped to [0, 0.99]. It is the
    lag-1 autocorrelation of the cells along diagonals, from the series' smoothness and the
    embedding, and widens the error of a diagonal's rate in Lead.z."""
    return float(_one_pair(x, y, params, 0).rho[0])


def leader(
    profile: ArrayLike, max_lag: int, vectors: int, rho: float = 0.0, threshold: float = LEAD_Z
) -> Lead:
    """Who leads, from a lag_profile of series with `vectors` embedded vectors each (the
    shorter's) and persistence rho (0: cells independent, which overstates z). See Lead."""
    prof = np.asarray(profile, dtype=np.float64)
    if prof.shape != (2 * max_lag + 1,):
        raise ValueError(f"profile must have 2 * max_lag + 1 = {2 * max_lag + 1} entries")
    if vectors <= max_lag or not 0 <= rho < 1:
        raise ValueError(f"need vectors > max_lag and 0 <= rho < 1, got {vectors} and {rho}")
    lag, clear, peak, contrast, z = _leaders(
        prof[None], max_lag, vectors, np.array([rho]), threshold
    )
    return Lead(int(lag[0]), bool(clear[0]), float(peak[0]), float(contrast[0]), float(z[0]))


def lead(
    x: ArrayLike, y: ArrayLike, params: RqaParams, max_lag: int, threshold: float = LEAD_Z
) -> Lead:
    """leader() of x against y, from one recurrence matrix."""
    xs, ys = _series(x, "x", params), _series(y, "y", params)
    result = _one_pair(xs, ys, params, max_lag)
    vectors = min(xs.size, ys.size) - params.span + 1
    return leader(result.profile[0], max_lag, vectors, float(result.rho[0]), threshold)


def crqa_pairs(
    series: ArrayLike,
    params: RqaParams | None = None,
    max_lag: int = 0,
    *,
    standardise: bool = True,
    threshold: float = LEAD_Z,
) -> PairwiseRqa:
    """CRQA, lag profile and lead of every pair i < j of P equal-length series (rows of a
    (P, n) array), x = series i. Rows are z-scored first unless standardise=False."""
    p = params or RqaParams()
    s = np.asarray(series, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"series must be a (participants, samples) array, got shape {s.shape}")
    for k, row in enumerate(s):
        _series(row, f"series {k}", p)
    if standardise:
        s = zscore(s)
    a, b = np.triu_indices(s.shape[0], k=1)
    n_vec = s.shape[1] - p.span + 1
    _check_lag(max_lag, n_vec, n_vec)
    chunk = max(1, _CHUNK_CELLS // (n_vec + 1) ** 2)
    parts: list[tuple[F64, ...]] = []
    for lo in range(0, a.size, chunk):
        block = _recurrence(s[a[lo : lo + chunk]], s[b[lo : lo + chunk]], p)
        result = _analyse(block, p, max_lag)
        parts.append((*result.measures, result.profile, result.rho))
    if not parts:
        parts.append((*[np.zeros(0)] * 7, np.zeros((0, 2 * max_lag + 1)), np.zeros(0)))
    rr, det, mean_l, lmax, entr, lam, tt, prof, rho = (
        np.concatenate(c) for c in zip(*parts, strict=True)
    )
    lag, clear, _, _, z = _leaders(prof, max_lag, n_vec, rho, threshold)
    pairs = np.stack([a, b], axis=1)
    return PairwiseRqa(pairs, rr, det, mean_l, lmax, entr, lam, tt, prof, rho, lag, clear, z)


# --- internals: a "block" is a (C, Nx + 1, Ny + 1) bool array, one padded matrix per pair, whose
# last row and column are False so that runs never continue from one row, pair or diagonal into
# the next.


class _Analysis(NamedTuple):
    measures: tuple[F64, F64, F64, F64, F64, F64, F64]  # rr, det, l, lmax, entr, lam, tt
    profile: F64  # (C, 2 * max_lag + 1)
    rho: F64  # persistence
    diagonal: F64  # (C, min(Nx, Ny) + 1) line counts by length, outside the Theiler band
    vertical: F64  # (C, Ny + 1)


def _series(x: ArrayLike, name: str, p: RqaParams) -> F64:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}")
    if a.size < p.span:
        raise ValueError(
            f"{name} has {a.size} samples; embedding {p.embedding} with delay {p.delay} "
            f"needs at least {p.span}"
        )
    if not np.isfinite(a).all():
        raise ValueError(f"{name} has non-finite values (nan or inf)")
    return a


def _check_lag(max_lag: int, nx_: int, ny_: int) -> None:
    most = min(nx_, ny_) - 1
    if not 0 <= max_lag <= most:
        raise ValueError(f"max_lag must be in [0, {most}] (vectors - 1), got {max_lag}")


def _one_pair(x: ArrayLike, y: ArrayLike, params: RqaParams, max_lag: int) -> _Analysis:
    xs, ys = _series(x, "x", params), _series(y, "y", params)
    _check_lag(max_lag, xs.size - params.span + 1, ys.size - params.span + 1)
    block = _recurrence(xs[None], ys[None], params)
    return _analyse(block, replace(params, theiler=0), max_lag)


def _recurrence(xs: F64, ys: F64, p: RqaParams) -> NDArray[np.bool_]:
    """xs (C, nx), ys (C, ny) -> padded block of x_c against y_c. The embedded distance is
    accumulated from the unembedded difference matrix shifted along its diagonal, coordinate by
    coordinate in PyRQA's order, so that float64 results match it bit for bit."""
    c, nx_, ny_ = xs.shape[0], xs.shape[1] - p.span + 1, ys.shape[1] - p.span + 1
    diff = xs[:, :, None] - ys[:, None, :]
    block = np.zeros((c, nx_ + 1, ny_ + 1), dtype=np.bool_)
    inner = block[:, :nx_, :ny_]
    offsets = range(0, p.span, p.delay)
    if p.metric == "maximum":  # max_k |.| < r  <=>  every coordinate within r
        near = np.abs(diff) < p.radius
        np.copyto(inner, near[:, :nx_, :ny_])
        for o in offsets[1:]:
            inner &= near[:, o : o + nx_, o : o + ny_]
        return block
    np.square(diff, out=diff)
    acc = diff[:, :nx_, :ny_].copy()
    for o in offsets[1:]:
        acc += diff[:, o : o + nx_, o : o + ny_]
    np.less(acc, _below_sqrt(p.radius), out=inner)  # sqrt(acc) < radius, without the sqrt
    return block


def _below_sqrt(r: float) -> float:
    """The least double t with sqrt(t) >= r; sqrt is correctly rounded and monotonic, so
    sqrt(a) < r  <=>  a < t."""
    t = r * r
    while math.sqrt(t) >= r:
        t = math.nextafter(t, -math.inf)
    while math.sqrt(t) < r:
        t = math.nextafter(t, math.inf)
    return t


def _runs(seq: NDArray[np.bool_]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Start positions and lengths of the runs of True in seq (1-D, ending False)."""
    change = np.empty_like(seq)
    change[0] = seq[0]
    np.not_equal(seq[1:], seq[:-1], out=change[1:])
    edges = np.flatnonzero(change)
    return edges[0::2], edges[1::2] - edges[0::2]  # rise, fall, rise, fall, ...


def _hist(pair: NDArray[np.intp], lengths: NDArray[np.intp], c: int, top: int) -> F64:
    """(C, top + 1) counts of lines by pair and length."""
    hist = np.bincount(pair * (top + 1) + lengths, minlength=c * (top + 1))
    return hist.reshape(c, top + 1).astype(np.float64)


def _diagonal_runs(block: NDArray[np.bool_]) -> tuple[NDArray[np.intp], ...]:
    """Pair, lag tau = j - i and length of every diagonal run. Read with stride Ny + 2, the flat
    block steps from (i, j) to (i + 1, j + 1) and the padding row and column end every such
    chain; the transpose of a (k, Ny + 2) reshape lays the chains end to end."""
    _, rows, cols = block.shape
    stride = cols + 1
    k = -(-block.size // stride) + 1  # the reshape's last row is all padding: chains end False
    buf = np.zeros(k * stride, dtype=np.bool_)
    buf[: block.size] = block.reshape(-1)
    starts, lengths = _runs(buf.reshape(k, stride).T.reshape(-1))
    pair, cell = np.divmod((starts % k) * stride + starts // k, rows * cols)
    i, j = np.divmod(cell, cols)
    return pair, j - i, lengths


def _analyse(block: NDArray[np.bool_], p: RqaParams, max_lag: int) -> _Analysis:
    """Everything crqa, lag_profile and crqa_pairs report, over the block's pairs. Clears the
    Theiler band of the block in place."""
    c, rows, cols = block.shape
    nx_, ny_, w = rows - 1, cols - 1, p.theiler
    pair, tau, length = _diagonal_runs(block)

    # lag profile and persistence: every diagonal, the Theiler band included
    width = 2 * max_lag + 1
    near = np.abs(tau) <= max_lag
    on_lag = np.bincount(
        pair[near] * width + tau[near] + max_lag, weights=length[near], minlength=c * width
    )
    lags = np.arange(-max_lag, max_lag + 1)
    profile = on_lag.reshape(c, width) / (np.minimum(nx_, ny_ - lags) - np.maximum(0, -lags))
    points = np.bincount(pair, weights=length, minlength=c).astype(np.float64)
    q = points / (nx_ * ny_)
    p11 = 1 - _ratio(np.bincount(pair, minlength=c).astype(np.float64), points)
    rho = np.clip(_ratio(p11 - q, 1 - q), 0.0, 0.99) * (points > 0)

    i, j = np.ogrid[:nx_, :ny_]
    band = np.abs(i - j) < w
    cells = nx_ * ny_ - int(np.count_nonzero(band))
    if cells == 0:
        raise ValueError(f"theiler {w} leaves no cell of the {nx_}x{ny_} plot")
    kept = np.abs(tau) >= w  # a diagonal line lies wholly inside or outside the band
    diagonal = _hist(pair[kept], length[kept], c, min(nx_, ny_))
    if w:
        block[:, :nx_, :ny_] &= ~band
    starts, v_length = _runs(block.reshape(-1))  # rows, ended by the padding column
    vertical = _hist(starts // (rows * cols), v_length, c, ny_)
    return _Analysis(
        _measures(diagonal, vertical, cells, p.min_line), profile, rho, diagonal, vertical
    )


def _measures(
    diagonal: F64, vertical: F64, cells: int, lmin: int
) -> tuple[F64, F64, F64, F64, F64, F64, F64]:
    def lines(hist: F64) -> tuple[F64, F64, F64]:
        size = np.arange(hist.shape[1], dtype=np.float64)
        return hist @ size, hist[:, lmin:].sum(axis=1), hist[:, lmin:] @ size[lmin:]

    points, n_diag, on_diag = lines(diagonal)
    _, n_vert, on_vert = lines(vertical)
    longest = ((diagonal > 0) * np.arange(diagonal.shape[1], dtype=np.float64)).max(axis=1)
    share = _ratio(diagonal[:, lmin:], n_diag[:, None])
    entr = -np.sum(share * np.log(np.where(share > 0, share, 1.0)), axis=1)
    return (
        points / cells,
        _ratio(on_diag, points),
        _ratio(on_diag, n_diag),
        longest,
        entr + 0.0,  # -0.0 -> 0.0
        _ratio(on_vert, points),
        _ratio(on_vert, n_vert),
    )


def _ratio(num: F64, den: F64) -> F64:
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def _leaders(
    profiles: F64, max_lag: int, vectors: int, rho: F64, threshold: float
) -> tuple[NDArray[np.int64], NDArray[np.bool_], F64, F64, F64]:
    """Vectorised leader(): lag, clear, peak, contrast, z per profile (row)."""
    order = np.argsort(np.abs(np.arange(-max_lag, max_lag + 1)), kind="stable")
    idx = order[np.argmax(profiles[:, order], axis=1)] if profiles.size else np.zeros(0, np.intp)
    lag = (idx - max_lag).astype(np.int64)
    rows = np.arange(profiles.shape[0])
    peak = profiles[rows, idx]
    contrast = peak - np.maximum(profiles[rows, max_lag], profiles[rows, max_lag - lag])
    q = profiles.mean(axis=1)
    se = np.sqrt(q * (1 - q) / (vectors - np.abs(lag)) * (1 + rho) / (1 - rho))
    z = _ratio(contrast, se)
    return lag, (lag != 0) & (z >= threshold), peak, contrast, z
