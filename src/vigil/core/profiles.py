"""Profiles: mergeable summaries of a set of prediction events.

Monitoring is computed from profiles, kept per model version x segment x time
window, so that a month is the merge of its days. Every profile class has the
same verbs:

- ``update(...)`` adds a batch in place (vectorised over arrays) and returns
  the profile;
- ``merge(other)`` returns a new profile of the union of both inputs. It is
  pure, commutative and associative, the empty profile (same configuration) is
  its identity, and merging profiles of different configurations raises
  :class:`ProfileError` (a ``ValueError``) naming what differs;
- ``to_dict()`` / ``from_dict(d)``: a JSON-safe dict ``{"type": ..., "format": 1, ...}``
  (sketches in their own binary form, base64; float arrays as little-endian
  float64, base64), and ``to_bytes()`` / ``from_bytes(b)``: that dict as UTF-8
  JSON. An unknown ``format`` is refused;
- ``==`` compares state: configuration, exact fields and sketch bytes. A
  profile equals its own round trip. Sketches are randomised, so two profiles
  of the same data built in another order can answer sketch queries
  differently (within the stated error) and then are not ``==``.

Exact fields (counts, moments, histograms, confusion counts, error sums) merge
exactly, up to floating-point rounding. Sketch answers come with their error
bounds: :attr:`NumericProfile.rank_error`, :meth:`CategoricalProfile.frequency_bounds`,
:meth:`CategoricalProfile.distinct_bounds`.

>>> import numpy as np
>>> monday = NumericProfile().update(np.array([1.0, 2.0, np.nan]))
>>> tuesday = NumericProfile().update([3.0, 4.0])
>>> week = monday.merge(tuesday)
>>> week.count, week.missing, week.mean, week.variance
(4, 1, 2.5, 1.25)
>>> profile_from_bytes(week.to_bytes()) == week
True
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasketches import (
    frequent_items_error_type,
    frequent_strings_sketch,
    hll_sketch,
    hll_union,
    kll_doubles_sketch,
    tgt_hll_type,
)

from vigil.core.frames import single_array
from vigil.errors import ProfileError

__all__ = [
    "FORMAT",
    "CategoricalProfile",
    "ClassificationProfile",
    "EmbeddingProfile",
    "NumericProfile",
    "Profile",
    "ProfileError",
    "RegressionProfile",
    "profile_from_bytes",
    "profile_from_dict",
]

#: The serialised format this code writes and reads.
FORMAT = 1

#: The probability of the true class is clipped to [EPS, 1 - EPS] before its log is taken (scikit-learn clips
#: every class probability the same way, to its dtype's machine epsilon since 1.5, to 1e-15 before).
EPS = 1e-15

HLL_LG_K = 12
_HLL_TYPE = tgt_hll_type.HLL_8


# ----------------------------------------------------------------------------------------------------------------
# helpers


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    if not isinstance(text, str):
        raise ProfileError(f"expected base64 text, got {type(text).__name__}")
    return base64.b64decode(text.encode("ascii"), validate=True)


def _pack(values: np.ndarray) -> str:
    """float64 array -> base64 of its little-endian bytes (exact, about half the size of decimal text)."""
    return _b64(np.ascontiguousarray(values, dtype="<f8").tobytes())


def _unpack(text: str) -> np.ndarray:
    return np.frombuffer(_unb64(text), dtype="<f8").astype(np.float64)


def _checked_edges(e: np.ndarray) -> np.ndarray:
    """Histogram edges, validated and made read-only (profiles share them)."""
    if e.ndim != 1 or e.size == 0:
        raise ProfileError(f"edges must be a non-empty 1-D array, got shape {e.shape}")
    if not np.isfinite(e).all():
        raise ProfileError("edges must be finite")
    if (np.diff(e) < 0).any():
        raise ProfileError("edges must be sorted in increasing order")
    e.flags.writeable = False
    return e


@functools.lru_cache(maxsize=1024)
def _stored_edges(text: str) -> np.ndarray:
    """The edges of a stored profile: every window of a column repeats its baseline's, decoded once here."""
    return _checked_edges(_unpack(text))


def _pack_counts(values: np.ndarray) -> str:
    """int64 counts -> base64 of their zlib-compressed little-endian bytes.

    Histograms are mostly small numbers and zeros: compressed they are smaller
    than JSON text, and decoding is a decompress and one copy, not a parse per number.
    """
    return _b64(zlib.compress(np.ascontiguousarray(values, dtype="<i8").tobytes(), 1))


def _unpack_counts(data: Any) -> np.ndarray:
    """Counts from :func:`_pack_counts` text (or a plain JSON list)."""
    if isinstance(data, str):
        return np.frombuffer(zlib.decompress(_unb64(data)), dtype="<i8").astype(np.int64)
    return np.array(data, dtype=np.int64)


def _enc(x: float) -> float | str | None:
    """A float as JSON: NaN (undefined) -> null, infinities -> "inf" / "-inf"."""
    x = float(x)
    if math.isnan(x):
        return None
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def _dec(x: float | str | None) -> float:
    if x is None:
        return math.nan
    if isinstance(x, str):
        if x not in ("inf", "-inf"):
            raise ProfileError(f"expected a number, got {x!r}")
        return float(x)
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise ProfileError(f"expected a number, got {x!r}")
    return float(x)


def _int(x: Any) -> int:
    if isinstance(x, bool) or not isinstance(x, int) or x < 0:
        raise ProfileError(f"expected a count, got {x!r}")
    return x


def _describe(value: Any) -> str:
    if isinstance(value, list | tuple) and len(value) > 6:
        head = ", ".join(repr(v) for v in value[:3])
        return f"[{head}, ... ({len(value)} values)]"
    return repr(value)


def _combine(na: int, mean_a: Any, m2_a: Any, nb: int, mean_b: Any, m2_b: Any) -> tuple[Any, Any]:
    """Chan et al.'s parallel update of (mean, M2); works on scalars and vectors; no division by zero."""
    if nb == 0:
        return mean_a, m2_a
    if na == 0:
        return mean_b, m2_b
    n = na + nb
    delta = mean_b - mean_a
    return mean_a + delta * (nb / n), m2_a + m2_b + delta * delta * (na * nb / n)


def _floats(values: Any, what: str = "values") -> np.ndarray:
    """A 1-D float64 array; None / Arrow nulls / pandas NA become NaN."""
    try:
        if isinstance(values, pa.Array | pa.ChunkedArray):
            arr = single_array(values)
            if pa.types.is_dictionary(arr.type):
                arr = arr.dictionary_decode()
            out = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
        elif hasattr(values, "to_numpy") and not isinstance(values, np.ndarray):
            try:  # pandas
                out = values.to_numpy(dtype=np.float64, na_value=np.nan)
            except TypeError:  # polars and others
                out = np.asarray(values.to_numpy(), dtype=np.float64)
        else:
            out = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError, pa.ArrowException) as err:
        raise ProfileError(f"{what} must be numbers: {err}") from err
    if out.ndim == 0:
        out = out.reshape(1)
    if out.ndim != 1:
        raise ProfileError(f"{what} must be one-dimensional, got shape {out.shape}")
    return out


def _strings(values: Any) -> pa.Array:
    """A string Arrow array; None and NaN are nulls; other values as text."""
    if isinstance(values, pa.Array | pa.ChunkedArray):
        arr = single_array(values)
    else:
        if hasattr(values, "to_numpy") and not isinstance(values, np.ndarray):
            values = values.to_numpy()
        elif not isinstance(values, np.ndarray):
            values = np.asarray(list(values), dtype=object)
        try:
            arr = pa.array(values, from_pandas=True)
        except (pa.ArrowException, TypeError, ValueError):  # mixed Python objects
            arr = pa.array([None if _missing(v) else str(v) for v in values.tolist()], pa.string())
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        try:
            arr = pc.cast(arr, pa.string())
        except pa.ArrowException as err:
            raise ProfileError(f"categorical values must be text, got {arr.type}") from err
    return arr


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _label(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise ProfileError(f"a class label cannot be {value!r}")
    if not isinstance(value, str | int | float | bool):
        raise ProfileError(f"a class label must be a string, a number or a boolean, got {value!r}")
    return value


def _check_qs(qs: Any) -> np.ndarray:
    q = np.asarray(qs, dtype=np.float64)
    if q.size and not ((q >= 0) & (q <= 1)).all():
        raise ProfileError(f"quantile ranks must be in [0, 1], got {qs!r}")
    return q


def _kll_quantiles(sketch: kll_doubles_sketch, qs: Any) -> np.ndarray:
    q = _check_qs(qs)
    if sketch.is_empty() or q.size == 0:
        return np.full(q.shape, np.nan)
    out = np.asarray(sketch.get_quantiles(q.ravel().tolist(), inclusive=True), dtype=np.float64).reshape(q.shape)
    # the sketch knows the exact extremes, though once compacted its ranks 0 and 1 may not return them
    return np.where(q == 0, sketch.get_min_value(), np.where(q == 1, sketch.get_max_value(), out))


def _kll_cdf(sketch: kll_doubles_sketch, points: Any, inclusive: bool = True) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    if np.isnan(p).any():
        raise ProfileError("cdf points cannot be NaN")
    if sketch.is_empty() or p.size == 0:
        return np.full(p.shape, np.nan)
    out = np.where(p > 0, 1.0, 0.0)  # the values at -inf / +inf
    finite = np.isfinite(p)
    if finite.any():
        uniq, inverse = np.unique(p[finite], return_inverse=True)
        ranks = np.asarray(sketch.get_cdf(uniq.tolist(), inclusive=inclusive)[:-1], dtype=np.float64)
        out[finite] = ranks[inverse.ravel()]
    return out


def _kll_load(text: str, k: int) -> kll_doubles_sketch:
    sketch = kll_doubles_sketch.deserialize(_unb64(text))
    if sketch.k != k:
        raise ProfileError(f"sketch has k={sketch.k}, profile says k={k}")
    return sketch


def _offset(sketch: frequent_strings_sketch) -> int:
    """The sketch's maximum error: the width of any value's bounds."""
    return int(sketch.get_upper_bound("") - sketch.get_lower_bound(""))


def _purged_offset(sketch: frequent_strings_sketch) -> int:
    """The error a frequent-items sketch would lose in a round trip or merge (see ``CategoricalProfile``)."""
    return _offset(sketch) if sketch.is_empty() else 0


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 8 <= k <= 65535:
        raise ProfileError(f"k must be an integer in [8, 65535], got {k!r}")
    return int(k)


def _seeded_rng(seed: int, *parts: Any) -> np.random.Generator:
    """A generator determined by the seed and the given parts (counts, bytes)."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(part if isinstance(part, bytes) else repr(part).encode())
        h.update(b"\x00")
    return np.random.default_rng([seed, int.from_bytes(h.digest(), "little")])


# ----------------------------------------------------------------------------------------------------------------
# the protocol

_TYPES: dict[str, type[Profile]] = {}


class Profile:
    """What every profile does: update, merge, serialise, compare.

    Subclasses set ``TYPE`` and implement ``_config``, ``_state``, ``_load``,
    ``_absorb`` and ``is_empty``.

    >>> p = RegressionProfile().update([1.0, 2.0], [1.5, 2.0])
    >>> isinstance(p, Profile), Profile.from_bytes(p.to_bytes()) == p
    (True, True)
    """

    TYPE: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.TYPE:
            _TYPES[cls.TYPE] = cls

    # -- what subclasses provide

    def _config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-safe: two profiles merge only if these are equal."""
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        """Everything else, JSON-safe."""
        raise NotImplementedError

    def _load(self, d: Mapping[str, Any]) -> None:
        """Set the state from a dict written by ``_state`` (self is freshly built from ``_config``)."""
        raise NotImplementedError

    def _absorb(self, other: Self) -> None:
        """Add other into self, in place; both are non-empty and of the same configuration."""
        raise NotImplementedError

    @classmethod
    def _from_config(cls, d: Mapping[str, Any]) -> Self:
        raise NotImplementedError

    @property
    def is_empty(self) -> bool:
        """True if no row at all (not even a missing one) was added."""
        raise NotImplementedError

    def _settings(self) -> dict[str, Any]:
        """The configuration as plain Python values, to compare and show."""
        return self._config()

    def _eq_state(self) -> dict[str, Any]:
        return self.to_dict()

    # -- the shared verbs

    def update(self, *args: Any, **kwargs: Any) -> Self:
        raise NotImplementedError

    def merge(self, other: Profile) -> Self:
        """A new profile of both inputs; neither input changes."""
        if type(other) is not type(self):
            raise ProfileError(f"cannot merge a {self.TYPE} profile with {type(other).__name__}")
        mine, theirs = self._settings(), other._settings()
        for key in mine:
            if mine[key] != theirs[key]:
                raise ProfileError(
                    f"cannot merge {self.TYPE} profiles with different {key}: "
                    f"{_describe(mine[key])} vs {_describe(theirs[key])}"
                )
        if other.is_empty:
            return self.copy()
        if self.is_empty:
            return other.copy()
        out = self.copy()
        out._absorb(other)
        return out

    def copy(self) -> Self:
        """An independent copy (sketches included)."""
        return type(self).from_dict(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: ``type``, ``format``, the configuration and the state."""
        return {"type": self.TYPE, "format": FORMAT, **self._config(), **self._state()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        """The profile a :meth:`to_dict` dict describes; on ``Profile`` itself, any type."""
        if not isinstance(d, Mapping):
            raise ProfileError(f"a profile is a dict, got {type(d).__name__}")
        fmt = d.get("format")
        if type(fmt) is not int or fmt != FORMAT:
            raise ProfileError(f"unknown profile format {fmt!r}: this version of Vigil reads format {FORMAT}")
        kind = d.get("type")
        target = _TYPES.get(kind) if isinstance(kind, str) else None
        if target is None:
            raise ProfileError(f"unknown profile type {kind!r}; known: {', '.join(sorted(_TYPES))}")
        if cls is not Profile and target is not cls:
            raise ProfileError(f"a {kind} profile is not a {cls.TYPE} profile")
        try:
            profile = target._from_config(d)
            profile._load(d)
        except ProfileError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as err:
            raise ProfileError(f"malformed {kind} profile: {type(err).__name__}: {err}") from err
        return profile

    def to_bytes(self) -> bytes:
        """UTF-8 JSON of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """The profile :meth:`to_bytes` wrote; on ``Profile`` itself, any type."""
        try:
            d = json.loads(bytes(data).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ProfileError(f"not a serialised profile: {err}") from err
        return cls.from_dict(d)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._eq_state() == other._eq_state()

    __hash__ = None  # type: ignore[assignment]


def profile_from_dict(d: Mapping[str, Any]) -> Profile:
    """The profile of any type that ``d`` (from ``to_dict``) describes.

    >>> p = profile_from_dict(CategoricalProfile().update(["a", "b", "a"]).to_dict())
    >>> type(p).__name__, p.frequencies()
    ('CategoricalProfile', {'a': 2, 'b': 1})
    """
    return Profile.from_dict(d)


def profile_from_bytes(data: bytes) -> Profile:
    """The profile of any type that ``data`` (from ``to_bytes``) holds.

    >>> profile_from_bytes(NumericProfile().update([1.0]).to_bytes()).count
    1
    """
    return Profile.from_bytes(data)


# ----------------------------------------------------------------------------------------------------------------
# numbers


class NumericProfile(Profile):
    """A numeric column: counts, exact moments, min/max, a KLL quantile sketch and optional fixed-bin counts.

    ``update(x)`` takes floats; NaN and None (Arrow/pandas nulls) are
    ``missing``, +-inf are counted in ``nonfinite`` and left out of everything
    else. ``count`` is the number of finite values: the moments, min, max, the
    sketch and the histogram describe those. ``mean``, ``min``, ``max`` and
    ``variance`` are NaN while ``count`` is 0.

    ``edges`` (sorted, finite, fixed at creation; typically the baseline's
    quantiles) give ``len(edges) + 1`` exact bins: ``(-inf, e[0])``,
    ``[e[0], e[1])``, ..., ``[e[-1], +inf)``, with the count (``hist``) and
    the sum of the values (``hist_sums``) of each. The sums place each bin's
    mass, tails included, for distances between profiles (the Wasserstein
    distance of :mod:`vigil.core.monitoring`). A profile stored before they
    were kept has ``hist_sums`` None; merged with one, so has the result.

    Quantiles and CDF values come from the KLL sketch: the rank of an answer is
    within :attr:`rank_error` (normalised, 99% confidence) of the rank asked.

    >>> p = NumericProfile(edges=[0.0, 10.0]).update([-1.0, 0.0, 5.0, 10.0, None, float("inf")])
    >>> p.count, p.missing, p.nonfinite, p.min, p.max
    (4, 1, 1, -1.0, 10.0)
    >>> p.histogram()[1].tolist(), p.hist_sums.tolist()
    ([1, 2, 1], [-1.0, 5.0, 10.0])
    >>> p.quantiles([0.5]).tolist(), p.cdf([5.0]).tolist(), p.cdf([5.0], inclusive=False).tolist()
    ([0.0], [0.75], [0.5])
    >>> round(p.rank_error, 4)
    0.0133
    """

    TYPE = "numeric"

    def __init__(self, edges: np.ndarray | Sequence[float] | None = None, k: int = 200) -> None:
        self.k = _check_k(k)
        if edges is None:
            self.edges: np.ndarray | None = None
            self.hist: np.ndarray | None = None
            self.hist_sums: np.ndarray | None = None
        else:
            self._set_edges(_checked_edges(np.array(edges, dtype=np.float64)))
        self.count = 0
        self.missing = 0
        self.nonfinite = 0
        self.sum = 0.0
        self.mean = math.nan
        self.m2 = 0.0
        self.min = math.nan
        self.max = math.nan
        self._sketch = kll_doubles_sketch(self.k)

    def _set_edges(self, edges: np.ndarray) -> None:
        self.edges = edges
        self.hist = np.zeros(edges.size + 1, dtype=np.int64)
        self.hist_sums = np.zeros(edges.size + 1, dtype=np.float64)

    def update(self, x: Any) -> Self:
        """Add a batch of values (array-like, Arrow or pandas); returns the profile."""
        x = _floats(x)
        finite = np.isfinite(x)
        if finite.all():
            v = x
        else:
            n_nan = int(np.isnan(x).sum())
            self.missing += n_nan
            v = x[finite]
            self.nonfinite += x.size - n_nan - v.size
        n = v.size
        if n == 0:
            return self
        total = float(v.sum())
        mean = total / n
        d = v - mean
        self.mean, self.m2 = _combine(self.count, self.mean, self.m2, n, mean, float(d @ d))
        self.count += n
        self.sum += total
        lo, hi = float(v.min()), float(v.max())
        self.min = lo if math.isnan(self.min) else min(self.min, lo)
        self.max = hi if math.isnan(self.max) else max(self.max, hi)
        if self.edges is not None:
            idx = np.searchsorted(self.edges, v, side="right")
            self.hist += np.bincount(idx, minlength=self.hist.size)
            if self.hist_sums is not None:
                self.hist_sums += np.bincount(idx, weights=v, minlength=self.hist.size)
        self._sketch.update(np.require(v, requirements=["C", "W"]))  # the binding refuses read-only arrays
        return self

    @property
    def is_empty(self) -> bool:
        return self.count == 0 and self.missing == 0 and self.nonfinite == 0

    @property
    def variance(self) -> float:
        """Population variance (ddof=0) of the finite values; NaN if there are none."""
        return self.m2 / self.count if self.count else math.nan

    @property
    def std(self) -> float:
        """Population standard deviation."""
        return math.sqrt(self.variance)

    @property
    def rank_error(self) -> float:
        """The KLL sketch's normalised rank error (single-sided, 99% confidence)."""
        return float(self._sketch.normalized_rank_error(False))

    def quantiles(self, qs: Sequence[float] | np.ndarray) -> np.ndarray:
        """Values at the normalised ranks ``qs``: the smallest value with at least a fraction q at or below it.

        That is ``np.quantile(..., method="inverted_cdf")`` on the data, within
        :attr:`rank_error`. NaN for an empty profile.
        """
        return _kll_quantiles(self._sketch, qs)

    def cdf(self, points: Sequence[float] | np.ndarray, *, inclusive: bool = True) -> np.ndarray:
        """Estimated fraction of the finite values <= each point (< each point with ``inclusive=False``),
        within :attr:`rank_error`."""
        return _kll_cdf(self._sketch, points, inclusive)

    def histogram(self) -> tuple[np.ndarray, np.ndarray]:
        """``(edges, counts)``, exact; ``counts`` has ``len(edges) + 1`` bins (see the class docstring)."""
        if self.edges is None:
            raise ProfileError("this numeric profile was built without edges, so it has no histogram")
        return self.edges.copy(), self.hist.copy()

    def _config(self) -> dict[str, Any]:
        return {"k": self.k, "edges": None if self.edges is None else _pack(self.edges)}

    def _settings(self) -> dict[str, Any]:
        return {"k": self.k, "edges": None if self.edges is None else self.edges.tolist()}

    @classmethod
    def _from_config(cls, d: Mapping[str, Any]) -> Self:
        profile = cls(k=d["k"])
        if d["edges"] is not None:
            profile._set_edges(_stored_edges(d["edges"]))
        return profile

    def _state(self) -> dict[str, Any]:
        return {
            "count": self.count, "missing": self.missing, "nonfinite": self.nonfinite,
            "sum": _enc(self.sum), "mean": _enc(self.mean), "m2": _enc(self.m2),
            "min": _enc(self.min), "max": _enc(self.max),
            "hist": None if self.hist is None else _pack_counts(self.hist),
            "hist_sums": None if self.hist_sums is None else _pack(self.hist_sums),
            "sketch": _b64(self._sketch.serialize()),
        }

    def _load(self, d: Mapping[str, Any]) -> None:
        self.count, self.missing, self.nonfinite = _int(d["count"]), _int(d["missing"]), _int(d["nonfinite"])
        self.sum, self.mean, self.m2 = _dec(d["sum"]), _dec(d["mean"]), _dec(d["m2"])
        self.min, self.max = _dec(d["min"]), _dec(d["max"])
        if self.edges is not None:
            hist = _unpack_counts(d["hist"])
            if hist.shape != self.hist.shape:
                raise ProfileError(f"hist has {hist.size} bins, edges make {self.hist.size}")
            self.hist = hist
            sums = d.get("hist_sums")  # absent from profiles stored before the sums were kept
            if sums is None:
                self.hist_sums = None
            else:
                self.hist_sums = _unpack(sums)
                if self.hist_sums.shape != self.hist.shape:
                    raise ProfileError(f"hist_sums has {self.hist_sums.size} bins, edges make {self.hist.size}")
        self._sketch = _kll_load(d["sketch"], self.k)
        if self._sketch.n != self.count:
            raise ProfileError(f"sketch holds {self._sketch.n} values, count is {self.count}")

    def _absorb(self, other: NumericProfile) -> None:
        self.mean, self.m2 = _combine(self.count, self.mean, self.m2, other.count, other.mean, other.m2)
        self.count += other.count
        self.missing += other.missing
        self.nonfinite += other.nonfinite
        self.sum += other.sum
        self.min = float(np.fmin(self.min, other.min))
        self.max = float(np.fmax(self.max, other.max))
        if self.hist is not None:
            self.hist = self.hist + other.hist
            both = self.hist_sums is not None and other.hist_sums is not None
            self.hist_sums = self.hist_sums + other.hist_sums if both else None
        self._sketch.merge(other._sketch)

    def __repr__(self) -> str:
        bins = "" if self.edges is None else f", bins={self.hist.size}"
        return f"NumericProfile(count={self.count}, missing={self.missing}, mean={self.mean:.6g}{bins})"


# ----------------------------------------------------------------------------------------------------------------
# categories


class CategoricalProfile(Profile):
    """A categorical column: value frequencies (exact up to ``cap`` distinct values) and a distinct count.

    ``update(values)`` takes strings (Arrow, pandas, NumPy object arrays,
    lists); None and NaN are ``missing``; other non-string values are counted
    as their text. Counts are exact while at most ``cap`` distinct values have
    been seen; past that, the profile switches for good to a frequent-items
    sketch (``2**lg_max_k`` slots): :meth:`frequencies` are then estimates, and
    :meth:`frequency_bounds` give a guaranteed lower and upper bound. An HLL
    sketch (lg_k=12, about 1.6% relative standard error) always tracks the
    distinct values; :meth:`distinct_estimate` is exact while the profile is.

    >>> p = CategoricalProfile(cap=2).update(["a", "b", "a", None])
    >>> p.count, p.missing, p.is_exact, p.frequencies(), p.frequency_bounds("a")
    (3, 1, True, {'a': 2, 'b': 1}, (2, 2, 2))
    >>> p.update(["c"]).is_exact, round(p.distinct_estimate())
    (False, 3)
    >>> est, lower, upper = p.frequency_bounds("a")
    >>> lower <= 2 <= upper
    True
    """

    TYPE = "categorical"

    def __init__(self, cap: int = 1000, lg_max_k: int = 10) -> None:
        if isinstance(cap, bool) or not isinstance(cap, int | np.integer) or cap < 0:
            raise ProfileError(f"cap must be a non-negative integer, got {cap!r}")
        if isinstance(lg_max_k, bool) or not isinstance(lg_max_k, int | np.integer) or not 3 <= lg_max_k <= 21:
            raise ProfileError(f"lg_max_k must be an integer in [3, 21], got {lg_max_k!r}")
        self.cap = int(cap)
        self.lg_max_k = int(lg_max_k)
        self.count = 0
        self.missing = 0
        self._counts: dict[str, int] | None = {}
        self._items: frequent_strings_sketch | None = None
        # Error the sketch itself no longer carries: DataSketches 5.2 (C++ and Python) treats a frequent-items
        # sketch whose purge removed every counter as empty, so serialising or merging it drops its weight and
        # its error offset (apache/datasketches-cpp PR #527). Such an offset is moved here, and every upper bound
        # (and the maximum error) adds it.
        self._lost_error = 0
        self._hll = hll_sketch(HLL_LG_K, _HLL_TYPE)
        self._empty_seen = False  # the HLL sketch ignores the empty string: it is counted aside

    def update(self, values: Any) -> Self:
        """Add a batch of values; returns the profile."""
        arr = _strings(values)
        nulls = arr.null_count
        self.missing += nulls
        self.count += len(arr) - nulls
        if len(arr) == nulls:
            return self
        vc = pc.value_counts(arr.drop_null() if nulls else arr)
        items = vc.field("values").to_pylist()
        counts = vc.field("counts").to_pylist()
        for item in items:
            if item:
                self._hll.update(item)
            else:
                self._empty_seen = True
        self._add_counts(zip(items, counts, strict=True))
        return self

    def _add_counts(self, pairs: Any) -> None:
        if self._counts is not None:
            exact = self._counts
            for item, c in pairs:
                exact[item] = exact.get(item, 0) + c
            if len(exact) > self.cap:
                self._overflow()
        else:
            sketch = self._items
            for item, c in pairs:
                sketch.update(item, c)

    def _overflow(self) -> None:
        sketch = frequent_strings_sketch(self.lg_max_k)
        for item, c in self._counts.items():
            sketch.update(item, c)
        self._items, self._counts = sketch, None

    @property
    def is_empty(self) -> bool:
        return self.count == 0 and self.missing == 0

    @property
    def is_exact(self) -> bool:
        """True while the counts are exact (at most ``cap`` distinct values seen)."""
        return self._counts is not None

    def frequencies(self) -> dict[str, int]:
        """Value -> count, most frequent first.

        Exact while :attr:`is_exact`; after that, the sketch's estimates of the
        values that may be more frequent than :attr:`max_frequency_error` (a
        value absent from the answer occurred at most that many times).
        """
        if self._counts is not None:
            return dict(sorted(self._counts.items(), key=lambda kv: (-kv[1], kv[0])))
        rows = self._items.get_frequent_items(frequent_items_error_type.NO_FALSE_NEGATIVES)
        return {item: int(est) for item, est, _, _ in sorted(rows, key=lambda r: (-r[1], r[0]))}

    def frequency_bounds(self, value: str) -> tuple[int, int, int]:
        """``(estimate, lower, upper)`` for one value; the true count is within [lower, upper]."""
        if self._counts is not None:
            c = self._counts.get(value, 0)
            return c, c, c
        s = self._items
        upper = int(s.get_upper_bound(value)) + self._lost_error
        return int(s.get_estimate(value)), int(s.get_lower_bound(value)), upper

    @property
    def max_frequency_error(self) -> int:
        """The largest possible error of any frequency estimate (0 while exact)."""
        if self._counts is not None:
            return 0
        return _offset(self._items) + self._lost_error

    def distinct_estimate(self) -> float:
        """Number of distinct values: exact while :attr:`is_exact`, else the HLL estimate."""
        if self._counts is not None:
            return float(len(self._counts))
        return float(self._hll.get_estimate()) + self._empty_seen

    def distinct_bounds(self, num_std_devs: int = 2) -> tuple[float, float]:
        """``(lower, upper)`` bounds of the distinct count at 1, 2 or 3 standard deviations."""
        if self._counts is not None:
            n = float(len(self._counts))
            return n, n
        extra = float(self._empty_seen)
        return self._hll.get_lower_bound(num_std_devs) + extra, self._hll.get_upper_bound(num_std_devs) + extra

    def _config(self) -> dict[str, Any]:
        return {"cap": self.cap, "lg_max_k": self.lg_max_k}

    @classmethod
    def _from_config(cls, d: Mapping[str, Any]) -> Self:
        return cls(cap=d["cap"], lg_max_k=d["lg_max_k"])

    def _state(self) -> dict[str, Any]:
        return {
            "count": self.count, "missing": self.missing,
            "counts": None if self._counts is None else dict(self._counts),
            "items": None if self._items is None else _b64(self._items.serialize()),
            "lost_error": self._lost_error + (0 if self._items is None else _purged_offset(self._items)),
            "hll": _b64(self._hll.serialize_compact()), "empty_seen": self._empty_seen,
        }

    def _load(self, d: Mapping[str, Any]) -> None:
        self.count, self.missing = _int(d["count"]), _int(d["missing"])
        if d["counts"] is not None:
            counts = d["counts"]
            if not isinstance(counts, Mapping) or not all(isinstance(k, str) for k in counts):
                raise ProfileError("counts must map strings to counts")
            self._counts = {k: _int(v) for k, v in counts.items()}
            self._items = None
        else:
            self._counts = None
            self._items = frequent_strings_sketch.deserialize(_unb64(d["items"]))
        self._lost_error = _int(d["lost_error"])
        self._hll = hll_sketch.deserialize(_unb64(d["hll"]))
        if not isinstance(d["empty_seen"], bool):
            raise ProfileError(f"empty_seen must be true or false, got {d['empty_seen']!r}")
        self._empty_seen = d["empty_seen"]

    def _absorb(self, other: CategoricalProfile) -> None:
        union = hll_union(HLL_LG_K)
        union.update(self._hll)
        union.update(other._hll)
        self._hll = union.get_result(_HLL_TYPE)
        self._empty_seen |= other._empty_seen
        self.count += other.count
        self.missing += other.missing
        if other._counts is not None:
            self._add_counts(other._counts.items())
        else:
            if self._counts is not None:
                self._overflow()
            self._items.merge(other._items)  # a no-op if other's sketch looks empty: keep its offset aside
            self._lost_error += _purged_offset(other._items)
        self._lost_error += other._lost_error

    def _eq_state(self) -> dict[str, Any]:
        # the sketches' bytes are not canonical (a round trip can reorder their hash tables): compare what they
        # answer instead; while exact, the counts determine the distinct values and the HLL adds nothing
        state = self.to_dict()
        del state["hll"], state["items"]
        if self._counts is None:
            s = self._items
            state["items"] = (s.num_active_items, self.max_frequency_error,
                              sorted(s.get_frequent_items(frequent_items_error_type.NO_FALSE_NEGATIVES)))
            del state["lost_error"]  # where the error is kept does not matter
            state["hll"] = [self._hll.get_estimate()] + [
                (self._hll.get_lower_bound(i), self._hll.get_upper_bound(i)) for i in (1, 2, 3)]
        return state

    def __repr__(self) -> str:
        mode = "exact" if self.is_exact else "sketch"
        return f"CategoricalProfile(count={self.count}, missing={self.missing}, {mode})"


# ----------------------------------------------------------------------------------------------------------------
# embeddings


class EmbeddingProfile(Profile):
    """An embedding column: count, running mean vector and a uniform reservoir sample of rows.

    ``update(matrix)`` takes an ``n x dimension`` array (or an Arrow list
    column, or a list of vectors); a row that is null or holds NaN or infinity
    is ``missing``. :meth:`sample` is a uniform sample without replacement of
    ``min(reservoir_size, count)`` of all rows seen, across updates and merges
    (merging draws from each side with hypergeometric odds, i.e. in proportion
    to the rows each side stands for). The random choices are deterministic:
    seeded from ``seed``, the counts and the content being combined, so the same
    inputs in the same order give the same profile, and ``a.merge(b) == b.merge(a)``.

    >>> import numpy as np
    >>> p = EmbeddingProfile(dimension=2, reservoir_size=2).update(np.array([[1.0, 0.0], [3.0, 2.0], [np.nan, 1.0]]))
    >>> p.count, p.missing, p.mean.tolist(), p.sample().shape
    (2, 1, [2.0, 1.0], (2, 2))
    """

    TYPE = "embedding"

    def __init__(self, dimension: int, reservoir_size: int = 256, seed: int = 0) -> None:
        for name, value, low in (("dimension", dimension, 1), ("reservoir_size", reservoir_size, 0), ("seed", seed, 0)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
                raise ProfileError(f"{name} must be an integer >= {low}, got {value!r}")
        self.dimension = int(dimension)
        self.reservoir_size = int(reservoir_size)
        self.seed = int(seed)
        self.count = 0
        self.missing = 0
        self._mean = np.zeros(self.dimension)
        self._reservoir = np.empty((0, self.dimension))

    def _matrix(self, matrix: Any) -> tuple[np.ndarray, int]:
        """(valid rows as float64, number of rows given)."""
        d = self.dimension
        if not isinstance(matrix, pa.Array | pa.ChunkedArray | np.ndarray):
            try:
                matrix = np.asarray(matrix, dtype=np.float64)
            except (TypeError, ValueError):  # ragged, or None rows: read as an Arrow list column
                try:
                    matrix = pa.array(list(matrix), from_pandas=True)
                except (pa.ArrowException, TypeError, ValueError) as err:
                    raise ProfileError(f"embeddings must be vectors of numbers: {err}") from err
        if isinstance(matrix, pa.Array | pa.ChunkedArray):
            arr = single_array(matrix)
            t = arr.type
            if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)):
                raise ProfileError(f"embeddings must be a list column, got {t}")
            n = len(arr)
            present = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
            lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)[present]
            if (lengths != d).any():
                raise ProfileError(f"embeddings must have dimension {d}, got a vector of length "
                                   f"{int(lengths[lengths != d][0])}")
            try:
                flat = pc.cast(pc.list_flatten(arr), pa.float64()).to_numpy(zero_copy_only=False)
            except pa.ArrowException as err:
                raise ProfileError(f"embeddings must be vectors of numbers: {err}") from err
            m = flat.reshape(-1, d)
        else:
            m = np.asarray(matrix, dtype=np.float64)
            if m.ndim == 1 and m.size == 0:
                m = m.reshape(0, d)
            if m.ndim != 2 or m.shape[1] != d:
                raise ProfileError(f"embeddings must be an n x {d} matrix, got shape {m.shape}")
            n = m.shape[0]
        return m[np.isfinite(m).all(axis=1)], n

    def update(self, matrix: Any) -> Self:
        """Add a batch of rows; returns the profile."""
        rows, n = self._matrix(matrix)
        nb = rows.shape[0]
        self.missing += n - nb
        if nb == 0:
            return self
        batch_mean = rows.mean(axis=0)
        rng = _seeded_rng(self.seed, "update", self.count, nb, self._mean.tobytes(), batch_mean.tobytes())
        take = min(self.reservoir_size, nb)
        sample = rows[np.sort(rng.choice(nb, size=take, replace=False))] if take < nb else rows.copy()
        self._reservoir = self._combine_samples(rng, self.count, self._reservoir, nb, sample)
        self._mean, _ = _combine(self.count, self._mean, 0.0, nb, batch_mean, 0.0)
        self.count += nb
        return self

    def _combine_samples(self, rng: np.random.Generator, na: int, a: np.ndarray, nb: int, b: np.ndarray) -> np.ndarray:
        """A uniform sample of the union from uniform samples of size min(R, n) of each side."""
        size = min(self.reservoir_size, na + nb)
        if na == 0:
            return b
        if nb == 0:
            return a
        from_a = int(rng.hypergeometric(na, nb, size)) if size else 0
        pick_a = np.sort(rng.choice(a.shape[0], size=from_a, replace=False))
        pick_b = np.sort(rng.choice(b.shape[0], size=size - from_a, replace=False))
        return np.concatenate([a[pick_a], b[pick_b]])

    @property
    def is_empty(self) -> bool:
        return self.count == 0 and self.missing == 0

    @property
    def mean(self) -> np.ndarray:
        """The mean vector of the valid rows (NaN while there are none)."""
        return self._mean.copy() if self.count else np.full(self.dimension, np.nan)

    def sample(self) -> np.ndarray:
        """The reservoir: ``min(reservoir_size, count)`` rows drawn uniformly without replacement."""
        return self._reservoir.copy()

    def _config(self) -> dict[str, Any]:
        return {"dimension": self.dimension, "reservoir_size": self.reservoir_size, "seed": self.seed}

    @classmethod
    def _from_config(cls, d: Mapping[str, Any]) -> Self:
        return cls(dimension=d["dimension"], reservoir_size=d["reservoir_size"], seed=d["seed"])

    def _state(self) -> dict[str, Any]:
        return {"count": self.count, "missing": self.missing, "mean": _pack(self._mean),
                "reservoir": _pack(self._reservoir)}

    def _load(self, d: Mapping[str, Any]) -> None:
        self.count, self.missing = _int(d["count"]), _int(d["missing"])
        mean = _unpack(d["mean"])
        reservoir = _unpack(d["reservoir"])
        if mean.size != self.dimension or reservoir.size % self.dimension:
            raise ProfileError("mean or reservoir do not match the dimension")
        reservoir = reservoir.reshape(-1, self.dimension)
        if reservoir.shape[0] != min(self.reservoir_size, self.count):
            raise ProfileError(f"reservoir holds {reservoir.shape[0]} rows, expected "
                               f"{min(self.reservoir_size, self.count)}")
        self._mean, self._reservoir = mean, reservoir

    def _absorb(self, other: EmbeddingProfile) -> None:
        # canonical order of the two sides, so that the merge is commutative
        a, b = sorted((self, other), key=lambda p: (p.count, p._reservoir.tobytes(), p._mean.tobytes()))
        rng = _seeded_rng(self.seed, "merge", a.count, b.count, a._reservoir.tobytes(), b._reservoir.tobytes())
        reservoir = self._combine_samples(rng, a.count, a._reservoir, b.count, b._reservoir)
        self._mean, _ = _combine(a.count, a._mean, 0.0, b.count, b._mean, 0.0)
        self._reservoir = reservoir
        self.count = a.count + b.count
        self.missing = a.missing + b.missing

    def __repr__(self) -> str:
        return f"EmbeddingProfile(dimension={self.dimension}, count={self.count}, missing={self.missing})"


# ----------------------------------------------------------------------------------------------------------------
# model quality


class ClassificationProfile(Profile):
    """Classification quality: confusion counts, score histograms, exact log-loss and Brier sums.

    ``update(y_true, y_pred, scores=None)``: labels are values of ``classes``;
    a row whose true or predicted label is anything else (None included) is
    counted in ``unknown_label`` and otherwise ignored. ``scores`` are, for
    two classes, P(``classes[-1]``) per row (an ``n x 2`` matrix is also
    taken), and for more, an ``n x k`` matrix of probabilities in the order of
    ``classes``. A row whose scores are not all in [0, 1] is left out of the
    score statistics (``scored`` counts the rows in them).

    ``confusion[t, p]`` counts rows of true class ``t`` predicted ``p``.
    Scores fall in ``bins`` equal-width bins over [0, 1] (bin
    ``j`` with ``j / bins <= s < (j + 1) / bins``, 1.0 in the last): for two classes ``score_hist[t, bin]``
    (shape 2 x bins) by true class; for more, ``score_hist[c, 1, bin]`` is
    P(c) over rows whose true class is c and ``score_hist[c, 0, bin]`` over the
    others (shape k x 2 x bins). Log loss clips probabilities to
    [1e-15, 1 - 1e-15]; the Brier score is scikit-learn's (binary: mean squared
    error of P(positive); multiclass: sum over classes, mean over rows).

    >>> p = ClassificationProfile(["no", "yes"], bins=4)
    >>> p = p.update(["no", "yes", "yes", "maybe"], ["no", "no", "yes", "yes"], [0.2, 0.4, 0.9, 0.5])
    >>> p.confusion.tolist(), p.unknown_label, p.accuracy
    ([[1, 0], [1, 1]], 1, 0.6666666666666666)
    >>> p.score_hist.tolist()
    [[1, 0, 0, 0], [0, 1, 0, 1]]
    >>> round(p.log_loss, 4), round(p.brier_score, 4)
    (0.4149, 0.1367)
    """

    TYPE = "classification"

    def __init__(self, classes: Sequence[Any], bins: int = 1000) -> None:
        labels = tuple(_label(c) for c in classes)
        if len(labels) < 2:
            raise ProfileError(f"a classification profile needs at least 2 classes, got {list(labels)!r}")
        index: dict[Any, int] = {}
        for i, c in enumerate(labels):
            if c in index:
                raise ProfileError(f"class {c!r} is given twice (as {labels[index[c]]!r})")
            index[c] = i
        if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 1:
            raise ProfileError(f"bins must be a positive integer, got {bins!r}")
        self.classes = labels
        self.bins = int(bins)
        self._index = index
        try:
            self._value_set: pa.Array | None = pa.array(list(labels))
        except (pa.ArrowException, TypeError, ValueError):
            self._value_set = None
        k = len(labels)
        self.confusion = np.zeros((k, k), dtype=np.int64)
        self.score_hist = np.zeros((2, self.bins) if k == 2 else (k, 2, self.bins), dtype=np.int64)
        self.count = 0
        self.unknown_label = 0
        self.scored = 0
        self.log_loss_sum = 0.0
        self.brier_sum = 0.0

    @property
    def is_binary(self) -> bool:
        """True for two classes."""
        return len(self.classes) == 2

    def _indices(self, y: Any) -> np.ndarray:
        """Index of each label in ``classes``, -1 for anything else."""
        if self._value_set is not None:
            try:
                arr = y if isinstance(y, pa.Array | pa.ChunkedArray) else pa.array(
                    y.to_numpy() if hasattr(y, "to_numpy") and not isinstance(y, np.ndarray) else y, from_pandas=True)
                arr = single_array(arr)
                if pa.types.is_dictionary(arr.type):
                    arr = arr.dictionary_decode()
                vt = self._value_set.type
                if pa.types.is_boolean(arr.type) != pa.types.is_boolean(vt) or (
                        pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)) != pa.types.is_string(vt):
                    raise TypeError("labels of another kind than the classes are matched in Python")
                found = pc.index_in(arr, value_set=self._value_set).fill_null(-1)
                return np.asarray(found.to_numpy(zero_copy_only=False), dtype=np.int64)
            except (pa.ArrowException, TypeError, ValueError):
                pass
        values = y.to_pylist() if isinstance(y, pa.Array | pa.ChunkedArray) else list(
            y.tolist() if hasattr(y, "tolist") else y)
        index = self._index

        def lookup(v: Any) -> int:
            if isinstance(v, np.generic):
                v = v.item()
            try:
                return index.get(v, -1)
            except TypeError:  # unhashable
                return -1

        return np.fromiter((lookup(v) for v in values), dtype=np.int64, count=len(values))

    def update(self, y_true: Any, y_pred: Any, scores: Any = None) -> Self:
        """Add a batch of labelled predictions; returns the profile."""
        t, p = self._indices(y_true), self._indices(y_pred)
        if t.size != p.size:
            raise ProfileError(f"y_true has {t.size} rows, y_pred {p.size}")
        known = (t >= 0) & (p >= 0)
        tk, pk = t[known], p[known]
        k = len(self.classes)
        self.unknown_label += int(t.size - tk.size)
        self.count += int(tk.size)
        if tk.size:
            self.confusion += np.bincount(tk * k + pk, minlength=k * k).reshape(k, k)
        if scores is not None:
            self._add_scores(self._score_matrix(scores, t.size)[known], tk)
        return self

    def _score_matrix(self, scores: Any, n: int) -> np.ndarray:
        k = len(self.classes)
        try:
            one_d = isinstance(scores, pa.Array | pa.ChunkedArray) or np.ndim(scores) == 1
            s = _floats(scores, "scores") if one_d else np.asarray(scores, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ProfileError(f"scores must be numbers: {err}") from err
        if self.is_binary and s.ndim == 2 and s.shape[1] == 2:
            s = s[:, 1]
        want = (n,) if self.is_binary else (n, k)
        if s.shape != want:
            raise ProfileError(f"scores must have shape {want}, got {s.shape}")
        return s

    def _add_scores(self, s: np.ndarray, t: np.ndarray) -> None:
        with np.errstate(invalid="ignore"):
            ok = (s >= 0) & (s <= 1)  # False for NaN
        if s.ndim == 2:
            ok = ok.all(axis=1)
        s, t = s[ok], t[ok]
        n = t.size
        if n == 0:
            return
        bins = self.bins
        # bin j holds j/bins <= s < (j+1)/bins on the exact edges arange(bins + 1) / bins (s * bins rounds
        # some scores a bin low), the same edges the metrics compare thresholds with
        edges = np.arange(bins + 1) / bins
        b = np.minimum(np.searchsorted(edges, s, side="right") - 1, bins - 1)
        if self.is_binary:
            self.score_hist += np.bincount(t * bins + b, minlength=2 * bins).reshape(2, bins)
            y = (t == 1).astype(np.float64)
            p_true = np.where(t == 1, s, 1.0 - s)
            self.brier_sum += float(((s - y) ** 2).sum())
        else:
            k = len(self.classes)
            onehot = np.zeros((n, k))
            onehot[np.arange(n), t] = 1.0
            flat = np.arange(k) * (2 * bins) + onehot.astype(np.int64) * bins + b
            self.score_hist += np.bincount(flat.ravel(), minlength=k * 2 * bins).reshape(k, 2, bins)
            p_true = s[np.arange(n), t]
            self.brier_sum += float(((s - onehot) ** 2).sum())
        self.log_loss_sum += float(-np.log(np.clip(p_true, EPS, 1 - EPS)).sum())
        self.scored += n

    @property
    def is_empty(self) -> bool:
        return self.count == 0 and self.unknown_label == 0

    @property
    def accuracy(self) -> float:
        """Fraction of rows predicted right (NaN without rows)."""
        return float(np.trace(self.confusion)) / self.count if self.count else math.nan

    @property
    def log_loss(self) -> float:
        """Mean log loss over the scored rows (NaN without any)."""
        return self.log_loss_sum / self.scored if self.scored else math.nan

    @property
    def brier_score(self) -> float:
        """Mean Brier score over the scored rows (NaN without any)."""
        return self.brier_sum / self.scored if self.scored else math.nan

    def _config(self) -> dict[str, Any]:
        return {"classes": list(self.classes), "bins": self.bins}

    @classmethod
    def _from_config(cls, d: Mapping[str, Any]) -> Self:
        return cls(classes=d["classes"], bins=d["bins"])

    def _state(self) -> dict[str, Any]:
        return {
            "count": self.count, "unknown_label": self.unknown_label, "scored": self.scored,
            "log_loss_sum": _enc(self.log_loss_sum), "brier_sum": _enc(self.brier_sum),
            "confusion": self.confusion.tolist(), "score_hist": _pack_counts(self.score_hist.ravel()),
        }

    def _load(self, d: Mapping[str, Any]) -> None:
        self.count, self.unknown_label, self.scored = _int(d["count"]), _int(d["unknown_label"]), _int(d["scored"])
        self.log_loss_sum, self.brier_sum = _dec(d["log_loss_sum"]), _dec(d["brier_sum"])
        confusion = np.array(d["confusion"], dtype=np.int64)
        hist = _unpack_counts(d["score_hist"])
        if confusion.shape != self.confusion.shape or hist.size != self.score_hist.size:
            raise ProfileError("confusion or score_hist do not match the classes and bins")
        self.confusion, self.score_hist = confusion, hist.reshape(self.score_hist.shape)

    def _absorb(self, other: ClassificationProfile) -> None:
        self.count += other.count
        self.unknown_label += other.unknown_label
        self.scored += other.scored
        self.log_loss_sum += other.log_loss_sum
        self.brier_sum += other.brier_sum
        self.confusion = self.confusion + other.confusion
        self.score_hist = self.score_hist + other.score_hist

    def __repr__(self) -> str:
        return f"ClassificationProfile(classes={list(self.classes)!r}, count={self.count}, scored={self.scored})"


class RegressionProfile(Profile):
    """Regression quality: exact sums for MAE, MSE, MAPE and R², residual moments and a residual sketch.

    ``update(y_true, y_pred)``: a row where either value is missing or not
    finite is counted in ``missing`` and otherwise ignored. Residuals are
    ``y_true - y_pred``. MAPE is over rows with ``y_true != 0``
    (``zero_true`` counts the others). R² follows scikit-learn, including its
    1.0 / 0.0 answer when ``y_true`` is constant. Residual quantiles come from
    a KLL sketch (``k``), within :attr:`rank_error`.

    >>> p = RegressionProfile().update([1.0, 2.0, 4.0, 0.0], [1.5, 2.0, 3.0, 0.5])
    >>> p.count, p.mae, p.mse, round(p.mape, 4), round(p.r2, 4), p.zero_true
    (4, 0.5, 0.375, 0.25, 0.8286, 1)
    >>> p.residual_quantiles([0.0, 1.0]).tolist()
    [-0.5, 1.0]
    """

    TYPE = "regression"

    def __init__(self, k: int = 200) -> None:
        self.k = _check_k(k)
        self.count = 0
        self.missing = 0
        self.abs_err_sum = 0.0
        self.sq_err_sum = 0.0
        self.ape_sum = 0.0
        self.zero_true = 0
        self.y_mean = math.nan
        self.y_m2 = 0.0
        self.residual_mean = math.nan
        self.residual_m2 = 0.0
        self._sketch = kll_doubles_sketch(self.k)

    def update(self, y_true: Any, y_pred: Any) -> Self:
        """Add a batch of (true, predicted) values; returns the profile."""
        yt, yp = _floats(y_true, "y_true"), _floats(y_pred, "y_pred")
        if yt.size != yp.size:
            raise ProfileError(f"y_true has {yt.size} rows, y_pred {yp.size}")
        ok = np.isfinite(yt) & np.isfinite(yp)
        if not ok.all():
            yt, yp = yt[ok], yp[ok]
        n = yt.size
        self.missing += int(ok.size - n)
        if n == 0:
            return self
        e = yt - yp
        ae = np.abs(e)
        nonzero = yt != 0
        self.abs_err_sum += float(ae.sum())
        self.sq_err_sum += float(e @ e)
        self.ape_sum += float((ae[nonzero] / np.abs(yt[nonzero])).sum())
        self.zero_true += int(n - nonzero.sum())
        ym, em = yt.mean(), e.mean()
        self.y_mean, self.y_m2 = _combine(self.count, self.y_mean, self.y_m2, n, float(ym),
                                          float(((yt - ym) ** 2).sum()))
        self.residual_mean, self.residual_m2 = _combine(self.count, self.residual_mean, self.residual_m2, n,
                                                         float(em), float(((e - em) ** 2).sum()))
        self.count += n
        self._sketch.update(np.require(e, requirements=["C", "W"]))
        return self

    @property
    def is_empty(self) -> bool:
        return self.count == 0 and self.missing == 0

    @property
    def mae(self) -> float:
        """Mean absolute error (NaN without rows)."""
        return self.abs_err_sum / self.count if self.count else math.nan

    @property
    def mse(self) -> float:
        """Mean squared error."""
        return self.sq_err_sum / self.count if self.count else math.nan

    @property
    def rmse(self) -> float:
        """Root mean squared error."""
        return math.sqrt(self.mse)

    @property
    def mape(self) -> float:
        """Mean absolute percentage error (as a fraction) over the rows with ``y_true != 0``."""
        n = self.count - self.zero_true
        return self.ape_sum / n if n else math.nan

    @property
    def r2(self) -> float:
        """Coefficient of determination, 1 - SS_res / SS_tot."""
        if not self.count:
            return math.nan
        if self.y_m2 == 0:
            return 1.0 if self.sq_err_sum == 0 else 0.0
        return 1.0 - self.sq_err_sum / self.y_m2

    @property
    def residual_std(self) -> float:
        """Population standard deviation of the residuals."""
        return math.sqrt(self.residual_m2 / self.count) if self.count else math.nan

    @property
    def rank_error(self) -> float:
        """The residual sketch's normalised rank error (single-sided, 99% confidence)."""
        return float(self._sketch.normalized_rank_error(False))

    def residual_quantiles(self, qs: Sequence[float] | np.ndarray) -> np.ndarray:
        """Residuals at the normalised ranks ``qs`` (as :meth:`NumericProfile.quantiles`)."""
        return _kll_quantiles(self._sketch, qs)

    def _config(self) -> dict[str, Any]:
        return {"k": self.k}

    @classmethod
    def _from_config(cls, d: Mapping[str, Any]) -> Self:
        return cls(k=d["k"])

    def _state(self) -> dict[str, Any]:
        return {
            "count": self.count, "missing": self.missing, "zero_true": self.zero_true,
            "abs_err_sum": _enc(self.abs_err_sum), "sq_err_sum": _enc(self.sq_err_sum), "ape_sum": _enc(self.ape_sum),
            "y_mean": _enc(self.y_mean), "y_m2": _enc(self.y_m2),
            "residual_mean": _enc(self.residual_mean), "residual_m2": _enc(self.residual_m2),
            "sketch": _b64(self._sketch.serialize()),
        }

    def _load(self, d: Mapping[str, Any]) -> None:
        self.count, self.missing, self.zero_true = _int(d["count"]), _int(d["missing"]), _int(d["zero_true"])
        self.abs_err_sum, self.sq_err_sum = _dec(d["abs_err_sum"]), _dec(d["sq_err_sum"])
        self.ape_sum = _dec(d["ape_sum"])
        self.y_mean, self.y_m2 = _dec(d["y_mean"]), _dec(d["y_m2"])
        self.residual_mean, self.residual_m2 = _dec(d["residual_mean"]), _dec(d["residual_m2"])
        self._sketch = _kll_load(d["sketch"], self.k)
        if self._sketch.n != self.count:
            raise ProfileError(f"sketch holds {self._sketch.n} residuals, count is {self.count}")

    def _absorb(self, other: RegressionProfile) -> None:
        n = self.count
        self.y_mean, self.y_m2 = _combine(n, self.y_mean, self.y_m2, other.count, other.y_mean, other.y_m2)
        self.residual_mean, self.residual_m2 = _combine(n, self.residual_mean, self.residual_m2,
                                                         other.count, other.residual_mean, other.residual_m2)
        self.count += other.count
        self.missing += other.missing
        self.zero_true += other.zero_true
        self.abs_err_sum += other.abs_err_sum
        self.sq_err_sum += other.sq_err_sum
        self.ape_sum += other.ape_sum
        self._sketch.merge(other._sketch)

    def __repr__(self) -> str:
        return f"RegressionProfile(count={self.count}, missing={self.missing}, mae={self.mae:.6g})"
