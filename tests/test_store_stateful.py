"""The store as a state machine (issue 12, "prove it").

A Hypothesis ``RuleBasedStateMachine`` (the way Zarr tests its stores) runs random sequences
of computes, extensions, subsets, explicit-value axes whose values share a hash slot,
concurrent computes, interrupted computes (a compute dying mid-way, as after a kill),
damage (truncate, flip or delete a shard, delete a commit record, corrupt array metadata,
corrupt a dataset record, a stray file among the records, a lost slot registry), ``gc``,
``verify``, ``repair``, reads and plane reads (``Store.slice``). Every window is a part of
its shards (partial shards, issue 14): overlapping, extended and narrower requests complete
the shards' boxes. Invariants:

* every successful read equals :func:`phasemap.evaluate_spec` bit for bit;
* until the first damage, a compute computes exactly the requested points not stored yet
  (``points_computed + points_reused == size``: no padding, nothing twice);
* every failure is a :class:`~phasemap.errors.PhasemapError`, and with no damage made since
  the last repair there is none: every read succeeds and ``verify`` reports nothing.

The budget here is modest; ``benchmarks/store_stateful.py`` runs the same machine longer.
Killing a real process with SIGKILL is tests/test_crash.py's job; here a compute is
interrupted in-process after a random number of shards.
"""

from __future__ import annotations

import collections
import os
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import phasemap
from phasemap import GridSpec
from phasemap.errors import PhasemapError
from phasemap.store import Store, compute, core, spec_id
from phasemap.store.layout import slot_of

#: Pairs of temperatures whose float64 bytes share a 31-bit hash slot (found by scanning
#: T = i / 10**5; checked in test_the_colliding_pairs_collide).
COLLIDING = [(5.34392, 5.64943), (3.47941, 3.7247), (4.05317, 4.15535), (4.71134, 4.83581)]
TEMPERATURES = sorted({t for pair in COLLIDING for t in pair} | {7.5})
#: Shard side along eps (``chunks:``): small shards, so a window spans several.
SIDE = 64
OUTPUTS = ("J_L", "Q_L", "Q_R", "P", "s", "p1", "regime", "machine")

#: Rules run, summed over every example (read by benchmarks/store_stateful.py).
RULES: collections.Counter = collections.Counter()


def test_the_colliding_pairs_collide():
    for a, b in COLLIDING:
        assert a != b and slot_of(a) == slot_of(b)


def make_spec(k0: int, n: int, temps: list[float]) -> GridSpec:
    """eps on the step-1/4 lattice from k0/4, n points; T explicit; chunks of SIDE."""
    return GridSpec.from_dict({
        "model": "single_level", "params": {"dT": 5.0, "dV": 5.0},
        "axes": {"eps": {"start": k0 / 4, "stop": (k0 + n - 1) / 4, "num": n},
                 "T": sorted(temps)},
        "chunks": {"eps": SIDE}})


def same_bits(ds, ref) -> None:
    for name in ("eps", "T", *OUTPUTS):
        a, b = np.asarray(ds[name].values), np.asarray(ref[name].values)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert a.tobytes() == b.tobytes(), f"{name} differs from phasemap.evaluate"


#: An index into a list that only the store's state knows (files, specs): every rule draws
#: the same data whatever that state is, as Hypothesis requires for replay and shrinking
#: (which shards an interrupted or concurrent compute committed is not deterministic).
picks = st.integers(0, 2**30)


def pick(items: list, i: int):
    return items[i % len(items)]


windows = st.tuples(st.integers(-200, 200), st.integers(2, 3 * SIDE),
                    st.lists(st.sampled_from(TEMPERATURES), min_size=1, max_size=3,
                             unique=True))


class _Interrupt(Exception):
    """Stands for the process dying: raised from inside a compute."""


class StoreMachine(RuleBasedStateMachine):
    """A store, the specs computed into it, and whether damage is outstanding."""

    @initialize()
    def start(self):
        self.dir = tempfile.mkdtemp(prefix="phasemap-stateful-")
        self.store = Store(os.path.join(self.dir, "store"))
        self.specs: dict[str, GridSpec] = {}   # every spec ever computed, by id
        self.damaged = False                   # damage made since the last repair
        self.ever_damaged = False              # damage made at all (orphans may remain)

    def teardown(self):
        shutil.rmtree(getattr(self, "dir", ""), ignore_errors=True)

    # --- helpers ---------------------------------------------------------------------------
    def _compute(self, spec: GridSpec):
        try:
            ds = compute(spec, self.store).load()
        except PhasemapError:
            assert self.damaged, "a compute failed with no damage outstanding"
            return None
        same_bits(ds, phasemap.evaluate_spec(spec))
        if not self.ever_damaged:
            # partial shards: exactly the requested points not stored yet are computed,
            # none twice and none outside the request
            assert ds.attrs["points_computed"] + ds.attrs["points_reused"] == spec.size
        self.specs[spec_id(spec)] = spec
        return ds

    def _files(self, pattern: str) -> list[Path]:
        return sorted(p for p in Path(self.store.root).glob(pattern)
                      if p.is_file() and not p.name.startswith("."))

    # --- computing -------------------------------------------------------------------------
    @rule(window=windows)
    def compute_a_window(self, window):
        RULES["compute"] += 1
        self._compute(make_spec(*window))

    @precondition(lambda self: self.specs)
    @rule(i=picks, grow=st.integers(1, 2 * SIDE),
          how=st.sampled_from(["left", "right", "subset"]))
    def extend_or_subset(self, i, grow, how):
        """Extend a computed window at either end, or take a part of it."""
        RULES["extend/subset"] += 1
        spec = pick(sorted(self.specs.values(), key=spec_id), i)
        eps = spec.axis_values("eps")
        k0, n = round(eps[0] * 4), len(eps)
        temps = [float(t) for t in spec.axis_values("T")]
        if how == "left":
            k0, n = k0 - grow, n + grow
        elif how == "right":
            n += grow
        else:
            cut = min(grow, n - 2)
            k0, n, temps = k0 + cut // 2, n - cut, temps[:1]
        self._compute(make_spec(k0, n, temps))

    @rule(pair=st.sampled_from(COLLIDING), window=windows)
    def colliding_values(self, pair, window):
        """Two values sharing a hash slot, one after the other and together."""
        RULES["colliding"] += 1
        k0, n, _ = window
        for temps in ([pair[0]], [pair[1]], sorted(pair)):
            self._compute(make_spec(k0, n, temps))

    @rule(a=windows, b=windows)
    def concurrent_computes(self, a, b):
        RULES["concurrent"] += 1
        specs = [make_spec(*a), make_spec(*b), make_spec(*a)]
        errors: list[BaseException] = []
        results: dict[int, object] = {}

        def run(i, spec):
            try:
                results[i] = compute(spec, Store(self.store.root)).load()
            except BaseException as exc:  # reported below, on the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(i, s)) for i, s in enumerate(specs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for exc in errors:
            assert isinstance(exc, PhasemapError) and self.damaged, repr(exc)
        for i, ds in results.items():
            same_bits(ds, phasemap.evaluate_spec(specs[i]))
            self.specs[spec_id(specs[i])] = specs[i]

    @rule(window=windows, after=st.integers(0, 4))
    def interrupted_compute(self, window, after):
        """A compute that dies after ``after`` shards (the rest stay uncommitted)."""
        RULES["interrupted"] += 1
        real = core.Family.compute_shard
        count = [0]
        lock = threading.Lock()

        def dying(fam, shard, slot_values, box=None):
            with lock:
                count[0] += 1
                if count[0] > after:
                    raise _Interrupt
            return real(fam, shard, slot_values, box)

        core.Family.compute_shard = dying  # type: ignore[method-assign]
        try:
            compute(make_spec(*window), self.store)
        except (_Interrupt, PhasemapError):
            pass
        finally:
            core.Family.compute_shard = real  # type: ignore[method-assign]

    # --- damage ----------------------------------------------------------------------------
    @precondition(lambda self: self.specs)
    @rule(i=picks, at=picks, bit=st.integers(0, 7),
          how=st.sampled_from(["truncate", "flip", "delete"]))
    def damage_a_shard(self, i, at, bit, how):
        files = self._files("families/*/J_L/c/*/*")
        if not files:
            return
        RULES[f"shard {how}"] += 1
        victim = pick(files, i)
        raw = victim.read_bytes()
        at %= len(raw)
        if how == "truncate":
            victim.write_bytes(raw[:at])
        elif how == "flip":
            victim.write_bytes(raw[:at] + bytes([raw[at] ^ (1 << bit)]) + raw[at + 1:])
        else:
            victim.unlink()
        self.damaged = self.ever_damaged = True

    @precondition(lambda self: self.specs)
    @rule(i=picks, what=st.sampled_from(["record", "metadata", "request", "stray", "slots"]))
    def damage_the_rest(self, i, what):
        root = Path(self.store.root)
        if what == "record":
            files = self._files("families/*/commits/*")
            if not files:
                return
            pick(files, i).unlink()
        elif what == "metadata":
            files = self._files("families/*/J_L/zarr.json")
            if not files:
                return
            pick(files, i).write_text('{"zarr_format": 3, "node')
        elif what == "request":
            files = self._files("requests/*.json")
            if not files:
                return
            pick(files, i).write_text("{not json")
        elif what == "stray":
            folders = sorted(root.glob("families/*/commits"))
            if not folders:
                return
            (pick(folders, i) / "notes.txt").write_text("stray")
        else:
            folders = sorted(root.glob("families/*/slots"))
            if not folders:
                return
            shutil.rmtree(pick(folders, i))
        RULES[f"damage {what}"] += 1
        self.damaged = self.ever_damaged = True

    # --- maintenance and reading -------------------------------------------------------------
    @rule()
    def gc(self):
        RULES["gc"] += 1
        self.store.gc(grace_seconds=0)
        assert self.store.leases() == []

    @precondition(lambda self: self.specs)
    @rule(i=picks)
    def rm(self, i):
        RULES["rm"] += 1
        rid = pick(sorted(self.specs), i)
        if self.store.read_blob(f"requests/{rid}.json") is not None:
            self.store.remove_request(rid)

    @rule()
    def verify(self):
        RULES["verify"] += 1
        bad = self.store.verify()
        if not self.damaged:
            assert bad == [], bad

    @rule()
    def repair(self):
        RULES["repair"] += 1
        self.store.repair()
        # a damaged dataset record cannot be rebuilt (its spec is lost): forget it
        for report in self.store.verify():
            assert report.family == "" and "dataset record" in report.problem, report
            rid = report.problem.split("dataset record ", 1)[1].split()[0]
            self.store.remove_request(rid)
        assert self.store.verify() == []
        self.damaged = False

    @precondition(lambda self: self.specs)
    @rule(i=picks, by_id=st.booleans())
    def read(self, i, by_id):
        RULES["read"] += 1
        rid = pick(sorted(self.specs), i)
        spec = self.specs[rid]
        try:
            ds = self.store.open(rid if by_id else spec).load()
        except PhasemapError:
            # not stored (an rm, a gc, an interrupted compute) or damage: both are reported
            recorded = self.store.read_blob(f"requests/{rid}.json") is not None
            assert self.damaged or not recorded or not by_id, "a recorded dataset failed"
            return
        same_bits(ds, phasemap.evaluate_spec(spec))

    @precondition(lambda self: self.specs)
    @rule(i=picks)
    def read_a_plane(self, i):
        """Store.slice (the direct plane reader) on a recorded dataset."""
        RULES["plane"] += 1
        rid = pick(sorted(self.specs), i)
        try:
            plane = self.store.slice(rid, x="eps", y="T")
        except PhasemapError:
            recorded = self.store.read_blob(f"requests/{rid}.json") is not None
            assert self.damaged or not recorded, "a recorded dataset's plane failed"
            return
        ref = phasemap.evaluate_spec(self.specs[rid]).transpose("T", "eps")
        same_bits(plane, ref)

    @invariant()
    def every_recorded_dataset_reads_correctly_when_undamaged(self):
        if getattr(self, "damaged", True):
            return
        for record in self.store.requests():
            spec = GridSpec.from_dict(record["spec"])
            same_bits(self.store.open(record["id"]).load(), phasemap.evaluate_spec(spec))


StoreMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("PHASEMAP_STATEFUL_EXAMPLES", "6")),
    stateful_step_count=int(os.environ.get("PHASEMAP_STATEFUL_STEPS", "12")),
    deadline=None, suppress_health_check=list(HealthCheck))
TestStore = StoreMachine.TestCase
