"""The measuring harness: doqu and its baseline alternately, in one process.

Every case compares two *sides*. A side is a ``prepare`` callable, run untimed
before each measurement (it builds fresh tables, fresh objects …), which returns
the thunk that is timed, and the number of operations that thunk performs. The
harness runs one untimed warm-up of each side, then several rounds, alternating
which side goes first (A B, B A, …) so that drift on a shared machine hits both.
The reported ratio is the median of the per-round ratios of the per-operation
times (doqu ÷ baseline), never a ratio of bare timings from different runs.
"""

from __future__ import annotations

import gc
import importlib
import statistics
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "Case",
    "Config",
    "Group",
    "Recorder",
    "Result",
    "Side",
    "compare",
    "format_table",
    "human_time",
    "missing",
    "repeated",
    "reps_for",
    "run_groups",
]

Thunk = Callable[[], object]


@dataclass(frozen=True)
class Config:
    """What a run was asked for."""

    n: int
    quick: bool
    rounds: int
    warmup: int = 1
    mongo_url: str | None = None
    pg_url: str | None = None
    mysql_url: str | None = None
    verbose: bool = False


@dataclass(frozen=True)
class Side:
    """One side of a comparison: ``prepare()`` (untimed) returns the timed thunk."""

    prepare: Callable[[], Thunk]
    ops: int = 1


@dataclass(frozen=True)
class Case:
    """A row of the table: what is compared and the ratio it must reach.

    ``target`` is the largest acceptable doqu ÷ baseline ratio (``None``: shown
    for information only). ``kind="rss"`` cases measure memory growth in MB
    instead, with ``target`` the budget in MB.
    """

    key: str
    backend: str
    title: str
    baseline: str
    target: float | None
    kind: str = "ratio"

    @property
    def target_text(self) -> str:
        """The target as shown in the table."""
        if self.target is None:
            return "-"
        if self.kind == "rss":
            return f"< {self.target:g} MB"
        return f"<= {self.target:g}"


@dataclass(frozen=True)
class Group:
    """Cases that share a backend and its setup (a server, a file, loaded data).

    ``requires`` names modules that must import (a doqu backend, a peer library),
    as ``"module"`` or ``"module:attribute"``;
    when one does not, every case of the group is reported unavailable, with why.
    """

    backend: str
    cases: tuple[Case, ...]
    requires: tuple[str, ...]
    run: Callable[[Config, Recorder], None]


@dataclass
class Result:
    """The outcome of one case (measured, unavailable, or failed)."""

    key: str
    backend: str
    case: str
    baseline: str
    n: int | None
    target: float | None
    target_text: str
    status: str  # "ok", "unavailable" or "error"
    ratio: float | None = None
    met: bool | None = None
    doqu_per_op: float | None = None
    baseline_per_op: float | None = None
    doqu_ops: int | None = None
    baseline_ops: int | None = None
    ratios: list[float] = field(default_factory=list)
    rss_growth_mb: float | None = None
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        """A plain dict for ``--json``."""
        return asdict(self)


def _time(thunk: Thunk) -> float:
    gc.collect()
    start = time.perf_counter()
    thunk()
    return time.perf_counter() - start


def compare(
    doqu: Side, base: Side, *, rounds: int, warmup: int = 1
) -> tuple[list[float], float, float]:
    """Run both sides alternately; return the per-round ratios and median per-op times.

    Round *i* runs doqu first when *i* is even and the baseline first otherwise.
    """
    for _ in range(warmup):
        doqu.prepare()()
        base.prepare()()
    ratios: list[float] = []
    doqu_times: list[float] = []
    base_times: list[float] = []
    for i in range(rounds):
        order = (doqu, base) if i % 2 == 0 else (base, doqu)
        measured: dict[int, float] = {}
        for side in order:
            thunk = side.prepare()
            measured[id(side)] = _time(thunk) / side.ops
        d, b = measured[id(doqu)], measured[id(base)]
        doqu_times.append(d)
        base_times.append(b)
        ratios.append(d / b if b > 0 else float("inf"))
    return ratios, statistics.median(doqu_times), statistics.median(base_times)


def reps_for(thunk: Thunk, budget: float = 0.02, cap: int = 2_000) -> int:
    """How many calls of *thunk* take about *budget* seconds (1 to *cap*).

    For the cases whose one operation is short (a count, a window of 20 rows):
    both sides then repeat it that many times per round, so that a round is
    long enough to time.
    """
    thunk()
    calls, start = 0, time.perf_counter()
    while True:  # a few calls, for a time per call that one slow call does not skew
        thunk()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= budget / 4 or calls >= cap:
            break
    once = elapsed / calls
    return cap if once <= 0 else max(1, min(cap, int(budget / once)))


def repeated(fn: Thunk, reps: int) -> Side:
    """A side that calls *fn* *reps* times per round (``ops=reps``)."""

    def run() -> None:
        for _ in range(reps):
            fn()

    return Side(lambda: run, ops=reps)


class Recorder:
    """Collects the results of the cases of one run, whatever happens to each."""

    def __init__(self, config: Config, cases: Iterable[Case], *, echo: bool = True) -> None:
        self.config = config
        self.cases = {c.key: c for c in cases}
        self.results: dict[str, Result] = {}
        self.echo = echo

    def _blank(self, case: Case, status: str, note: str, n: int | None = None) -> Result:
        return Result(
            key=case.key,
            backend=case.backend,
            case=case.title,
            baseline=case.baseline,
            n=n,
            target=case.target,
            target_text=case.target_text,
            status=status,
            note=note,
        )

    def _store(self, result: Result) -> None:
        self.results[result.key] = result
        if self.echo:
            print(format_row(result), flush=True)

    def unavailable(self, key: str, reason: str) -> None:
        """Record that a case could not run (backend missing, server down …)."""
        if key not in self.results:
            self._store(self._blank(self.cases[key], "unavailable", reason))

    def error(self, key: str, exc: BaseException) -> None:
        """Record that a case failed with *exc*."""
        if key not in self.results:
            note = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]
            if self.config.verbose:
                traceback.print_exception(exc)
            self._store(self._blank(self.cases[key], "error", note))

    def pending(self, keys: Iterable[str]) -> list[str]:
        """Those of *keys* with no result yet."""
        return [k for k in keys if k not in self.results]

    def measure(
        self,
        key: str,
        doqu: Side,
        base: Side,
        *,
        n: int,
        rounds: int | None = None,
        note: str = "",
        check: Callable[[], str | None] | None = None,
    ) -> Result | None:
        """Compare *doqu* with *base* for case *key* and record the ratio.

        *check*, run after measuring, may return a reason the target is missed
        regardless of the ratio (e.g. a query plan that does not use the index).
        """
        case = self.cases[key]
        try:
            ratios, d, b = compare(
                doqu, base, rounds=rounds or self.config.rounds, warmup=self.config.warmup
            )
            problem = check() if check else None
        except Exception as exc:
            self.error(key, exc)
            return None
        ratio = statistics.median(ratios)
        met = None if case.target is None else ratio <= case.target and problem is None
        result = self._blank(case, "ok", "; ".join(x for x in (note, problem) if x), n)
        result.ratio = ratio
        result.met = met
        result.ratios = ratios
        result.doqu_per_op = d
        result.baseline_per_op = b
        result.doqu_ops = doqu.ops
        result.baseline_ops = base.ops
        self._store(result)
        return result

    def record_rss(
        self, key: str, growth_mb: float, n: int, seconds: float, note: str = ""
    ) -> None:
        """Record a memory case: RSS growth in MB against the case's budget."""
        case = self.cases[key]
        result = self._blank(case, "ok", note, n)
        result.rss_growth_mb = growth_mb
        assert case.target is not None
        # The ratio column shows the share of the budget used (< 1 meets it).
        result.ratio = growth_mb / case.target
        result.met = growth_mb < case.target
        result.doqu_per_op = seconds / n
        result.doqu_ops = n
        self._store(result)

    def ordered(self) -> list[Result]:
        """Results in case order, a row for every case (never a silent omission)."""
        out = []
        for key, case in self.cases.items():
            result = self.results.get(key) or self._blank(case, "unavailable", "not run")
            out.append(result)
        return out


def missing(group: Group) -> str | None:
    """Why *group* cannot run (a module in ``requires`` does not import), or ``None``."""
    for need in group.requires:
        module, _, attr = need.partition(":")
        try:
            loaded = importlib.import_module(module)
        except Exception as exc:  # any import failure makes the group unavailable
            return f"{module} cannot be imported ({type(exc).__name__}: {exc})"[:200]
        if attr and not hasattr(loaded, attr):
            return f"{module} has no {attr} yet"
    return None


def run_groups(config: Config, groups: Iterable[Group], backends: Iterable[str]) -> Recorder:
    """Run those of *groups* whose backend is among *backends*; every case gets a row."""
    chosen = set(backends)
    selected = [g for g in groups if g.backend in chosen]
    rec = Recorder(config, [c for g in selected for c in g.cases])
    for group in selected:
        keys = [c.key for c in group.cases]
        reason = missing(group)
        if reason:
            for key in keys:
                rec.unavailable(key, reason)
            continue
        try:
            group.run(config, rec)
        except Exception as exc:
            for key in rec.pending(keys):
                rec.error(key, exc)
    return rec


def human_time(seconds: float | None) -> str:
    """Seconds as a short string with a fitting unit."""
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:.2f} us"
    return f"{seconds * 1e9:.0f} ns"


HEADER = ("case", "baseline", "N", "doqu/op", "base/op", "ratio", "target", "result")
WIDTHS = (44, 42, 9, 10, 10, 7, 9, 0)


def _cells(r: Result) -> tuple[str, ...]:
    if r.status != "ok":
        return (r.case, r.baseline, "-", "-", "-", "-", r.target_text, f"{r.status}: {r.note}")
    if r.rss_growth_mb is not None:
        verdict = "met" if r.met else "MISSED"
        return (
            r.case,
            r.baseline,
            f"{r.n:,}",
            human_time(r.doqu_per_op),
            "-",
            f"{r.rss_growth_mb:.1f}MB",
            r.target_text,
            verdict + (f" ({r.note})" if r.note else ""),
        )
    verdict = "-" if r.met is None else ("met" if r.met else "MISSED")
    spread = f"{min(r.ratios):.2f}-{max(r.ratios):.2f}" if r.ratios else ""
    extra = "; ".join(x for x in (f"rounds {spread}", r.note) if x)
    return (
        r.case,
        r.baseline,
        f"{r.n:,}" if r.n is not None else "-",
        human_time(r.doqu_per_op),
        human_time(r.baseline_per_op),
        f"{r.ratio:.3f}" if r.ratio is not None else "-",
        r.target_text,
        f"{verdict} ({extra})",
    )


def _line(cells: tuple[str, ...]) -> str:
    parts = [c.ljust(w) if w else c for c, w in zip(cells, WIDTHS)]
    return " | ".join(parts).rstrip()


def format_row(result: Result) -> str:
    """One table line."""
    return _line(_cells(result))


def format_table(results: list[Result]) -> str:
    """The whole table, header first."""
    head = _line(HEADER)
    rule = "-+-".join("-" * (w or 24) for w in WIDTHS)
    return "\n".join([head, rule, *(format_row(r) for r in results)])
