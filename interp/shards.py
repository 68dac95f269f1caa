"""The one shard rule of every model stage, and the shard mark that lets `interp merge` check its inputs.

An item belongs to shard i of n when a hash of its id is i modulo n, so the split needs no coordination and is
the same on every machine. A shard's run directory holds ``shard.json`` (a `ShardMark`: stage, i, n, the run's
config hash, a hash of the stage's own settings, done or not). `check_shards` is what `interp merge` runs before
it unions anything: one stage, one config, one count, every index exactly once, every shard finished, and every
record inside the shard it claims to be.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence, TypeVar

from .errors import InterpError

SHARD_FILE = "shard.json"
SHARD_STAGES = ("sustain", "cas_tf", "ablation_sweep", "ablation")
T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (0 <= index < count)."""

    index: int
    count: int

    def __post_init__(self):
        if isinstance(self.index, bool) or isinstance(self.count, bool) or not (
                isinstance(self.index, int) and isinstance(self.count, int)) or not 0 <= self.index < self.count:
            raise InterpError(f"a shard is i/n with integers 0 <= i < n, got {self.index!r}/{self.count!r}")

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """From the command-line form ``i/n``."""
        try:
            i, n = (int(x) for x in str(text).split("/"))
        except ValueError:
            raise InterpError(f"--shard must look like i/n with 0 <= i < n, got {text!r}") from None
        return cls(i, n)

    @classmethod
    def of(cls, value: "Shard | tuple[int, int] | str | None") -> "Shard | None":
        """A Shard from a Shard, an (i, n) pair, an ``i/n`` string, or None (no sharding)."""
        if value is None or isinstance(value, Shard):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        try:
            i, n = value
        except (TypeError, ValueError):
            raise InterpError(f"shard must be i/n, an (i, n) pair or a Shard, got {value!r}") from None
        return cls(i, n)

    def owns(self, item_id: str) -> bool:
        """Whether the item with this id is in this shard (the rule every stage uses)."""
        return shard_index(item_id, self.count) == self.index

    def select(self, xs: Iterable[T], item_id: Callable[[T], str] = lambda x: x.id) -> list[T]:  # type: ignore[attr-defined]
        """The elements of `xs` whose item is in this shard, in their order."""
        return [x for x in xs if self.owns(item_id(x))]

    @property
    def name(self) -> str:
        return f"{self.index}of{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_index(item_id: str, count: int) -> int:
    """The shard (0..count-1) of an item id: sha1 of ``shard|<id>``, first 32 bits, modulo count."""
    return int(hashlib.sha1(f"shard|{item_id}".encode()).hexdigest()[:8], 16) % count


def select(xs: Iterable[T], shard: Shard | None, item_id: Callable[[T], str]) -> list[T]:
    """`shard.select(xs, item_id)`, or all of `xs` when there is no shard."""
    xs = list(xs)
    return xs if shard is None else shard.select(xs, item_id)


def settings_hash(d: dict) -> str:
    """A short hash of a stage's own settings (e.g. the AblationConfig), so shards of two settings never merge."""
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass
class ShardMark:
    """What ``shard.json`` says about a shard's run directory."""

    stage: str
    index: int
    count: int
    config_hash: str
    settings: str = ""  # settings_hash of the stage's own settings ("" for sustain: the config hash covers them)
    done: bool = False
    source: str = ""  # the run directory a cas_tf / ablation shard read its records from

    @property
    def shard(self) -> Shard:
        return Shard(self.index, self.count)

    def describe(self) -> str:
        return f"{self.stage} shard {self.index}/{self.count}"


def write_mark(run_dir: str | os.PathLike, mark: ShardMark) -> None:
    """Write ``shard.json`` atomically (the caller holds the run directory's lock)."""
    p = Path(run_dir) / SHARD_FILE
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f"{SHARD_FILE}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(asdict(mark), indent=1))
    os.replace(tmp, p)


def read_mark(run_dir: str | os.PathLike) -> ShardMark | None:
    """The shard mark of a run directory, None if it is not a shard."""
    p = Path(run_dir) / SHARD_FILE
    if not p.is_file():
        return None
    try:
        return ShardMark(**json.loads(p.read_text()))
    except (ValueError, TypeError) as e:
        raise InterpError(f"{p} is damaged ({e}); re-run that shard into a new folder") from None


def begin(run_dir: str | os.PathLike, stage: str, shard: Shard, config_hash: str, settings: str = "",
          source: str = "") -> None:
    """Mark a directory as `stage`'s shard (not done); refuses a directory that is another stage's or shard's."""
    if stage not in SHARD_STAGES:
        raise InterpError(f"unknown shard stage {stage!r}; one of {SHARD_STAGES}")
    old = read_mark(run_dir)
    new = ShardMark(stage, shard.index, shard.count, config_hash, settings, False, source)
    if old is not None:
        if (old.stage, old.index, old.count, old.config_hash, old.settings) != (
                new.stage, new.index, new.count, new.config_hash, new.settings):
            raise InterpError(f"{run_dir} already holds {old.describe()} (settings {old.settings or '-'}); "
                              f"it cannot also be {new.describe()} (settings {settings or '-'}): use another folder")
        new.done = old.done
    write_mark(run_dir, new)


def finish(run_dir: str | os.PathLike) -> None:
    """Mark a shard as finished: only then does `interp merge` take it."""
    mark = read_mark(run_dir)
    if mark is None:
        raise InterpError(f"{run_dir} is not a shard (no {SHARD_FILE})")
    mark.done = True
    write_mark(run_dir, mark)


def check_shards(dirs: Sequence[str | os.PathLike]) -> list[ShardMark] | None:
    """Refuse shards that are not one complete, disjoint, finished set of one stage and settings.

    Returns their marks in the order given, or None when no directory is a shard (plain run directories, merged
    as a union for compatibility with runs written before shard marks existed).
    """
    marks = [read_mark(d) for d in dirs]
    if all(m is None for m in marks):
        return None
    plain = [str(d) for d, m in zip(dirs, marks) if m is None]
    if plain:
        raise InterpError(f"refusing to merge shards with directories that are not shards ({', '.join(plain)}): "
                          "merge only the shard directories of one stage")
    ms: list[ShardMark] = [m for m in marks if m is not None]
    kinds = sorted({(m.stage, m.count, m.settings) for m in ms})
    if len(kinds) != 1:
        raise InterpError("refusing to merge shards of different stages, shard counts or settings: "
                          + "; ".join(f"{s} of {n} (settings {h or '-'})" for s, n, h in kinds))
    seen: dict[int, str] = {}
    for d, m in zip(dirs, ms):
        if m.index in seen:
            raise InterpError(f"refusing to merge overlapping shards: {m.describe()} is both {seen[m.index]} and {d}")
        seen[m.index] = str(d)
    missing = [i for i in range(ms[0].count) if i not in seen]
    if missing:
        raise InterpError(f"refusing to merge an incomplete set: {ms[0].stage} shard(s) "
                          f"{', '.join(f'{i}/{ms[0].count}' for i in missing)} missing")
    unfinished = [f"{m.describe()} ({d})" for d, m in zip(dirs, ms) if not m.done]
    if unfinished:
        raise InterpError(f"refusing to merge unfinished shards: {', '.join(unfinished)}; re-run them (they resume)")
    return ms


def check_owned(records: Iterable[dict], mark: ShardMark, where: str) -> None:
    """Every record of a shard is of an item that shard owns (else the shard was written by another rule)."""
    shard = mark.shard
    for r in records:
        iid = r.get("item_id")
        if iid is not None and not shard.owns(str(iid)):
            raise InterpError(f"{where}: record {r.get('key')} of item {iid!r} does not belong to {mark.describe()} "
                              "(written with another shard rule or into the wrong folder); refusing to merge")
