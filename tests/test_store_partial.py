"""Issue 14 in the store: partial shards, the one-read cache hit, and the plane reader.

Values are always compared bit for bit with a fresh :func:`phasemap.evaluate_spec` of the
same points; counts of points computed are the store's own figures, checked against what the
requests make necessary.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import phasemap
from phasemap import GridSpec, ParameterError, StoreError
from phasemap.errors import StoreCorrupted
from phasemap.store import FamilyLayout, Store, compute, plan, spec_id
from phasemap.store import family as family_module
from phasemap.store.layout import boxes_merge, boxes_missing, is_not_computed, not_computed

OUTPUTS = ("J_L", "Q_L", "Q_R", "P", "s", "p1", "regime", "machine")


def grid(k0: int, n: int, dv=(-2.0, 2.0, 5), T=None) -> GridSpec:
    """eps on the step-1/10 lattice from k0/10 (n points), and dV or explicit T values;
    shards of 64 along eps, so windows cut shards."""
    axes: dict = {"eps": {"start": k0 / 10, "stop": (k0 + n - 1) / 10, "num": n}}
    params = {"dT": 1.0}
    if T is None:
        axes["dV"] = {"start": dv[0], "stop": dv[1], "num": dv[2]}
    else:
        axes["T"] = list(T)
        params["dV"] = 1.0
    return GridSpec.from_dict({"model": "single_level", "params": params, "axes": axes,
                               "chunks": {"eps": 64}})


def same_bits(ds, spec: GridSpec) -> None:
    ref = phasemap.evaluate_spec(spec)
    for name in OUTPUTS:
        a, b = np.asarray(ds[name].values), np.asarray(ref[name].values)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert a.tobytes() == b.tobytes(), f"{name} differs from phasemap.evaluate"


def held_points(store: Store, spec: GridSpec) -> int:
    fam = store.family(FamilyLayout.from_spec(spec), create=False)
    return sum(fam.commit_record(s)["points"] for s in fam.committed())


# --- boxes ---------------------------------------------------------------------------------

def test_box_algebra_covers_exactly_once():
    rng = np.random.default_rng(7)
    for _ in range(200):
        held = []
        mask = np.zeros((12, 9), bool)
        for _ in range(rng.integers(1, 5)):
            lo = rng.integers(0, [12, 9])
            hi = lo + rng.integers(1, 8, size=2)
            want = ((int(lo[0]), int(min(hi[0], 12))), (int(lo[1]), int(min(hi[1], 9))))
            new = boxes_missing(want, held)
            count = np.zeros_like(mask, dtype=int)
            for b in new:
                count[b[0][0]:b[0][1], b[1][0]:b[1][1]] += 1
            inside = np.zeros_like(mask)
            inside[want[0][0]:want[0][1], want[1][0]:want[1][1]] = True
            # the new boxes are exactly the wanted points not held, each once
            assert np.array_equal(count, (inside & ~mask).astype(int))
            mask |= inside
            held = boxes_merge(held + new)
            cover = np.zeros_like(mask, dtype=int)
            for b in held:
                cover[b[0][0]:b[0][1], b[1][0]:b[1][1]] += 1
            assert np.array_equal(cover, mask.astype(int))


# --- partial shards --------------------------------------------------------------------------

def test_overlapping_extended_and_sub_box_requests_compute_each_point_once(tmp_path):
    store = Store(tmp_path / "store")
    dv = 5
    steps = [  # (k0, n, points a compute must compute)
        (10, 100, 100 * dv),        # cuts shards at both ends
        (60, 100, 50 * dv),         # overlaps it: only the 50 new eps values
        (-100, 400, 250 * dv),      # extends it on both sides
        (30, 20, 0),                # a sub-box of what is stored: nothing
        (-100, 400, 0),             # itself again
    ]
    total = 0
    for k0, n, expected in steps:
        spec = grid(k0, n)
        p = plan(spec, store)
        assert p.points_to_compute == expected
        ds = compute(spec, store)
        assert ds.attrs["points_computed"] == expected
        assert ds.attrs["points_reused"] == spec.size - expected
        total += expected
        same_bits(ds, spec)
    # the records hold exactly the union of the requests (eps -100..299): 400 x 5 points
    assert total == held_points(store, grid(-100, 400)) == 400 * dv
    fam = store.family(FamilyLayout.from_spec(grid(0, 2)), create=False)
    for shard in fam.committed():  # extensions merged into one box per shard
        assert len(fam.commit_record(shard)["boxes"]) == 1
    assert store.verify() == []
    # a narrower dV range inside the stored one, and a wider one: only the new dV values
    ds = compute(grid(0, 50, dv=(-1.0, 1.0, 3)), store)
    assert ds.attrs["points_computed"] == 0
    wider = grid(0, 50, dv=(-3.0, 3.0, 7))
    ds = compute(wider, store)
    assert ds.attrs["points_computed"] == 50 * 2
    same_bits(ds, wider)


def test_explicit_values_compute_only_the_requested_slots(tmp_path):
    store = Store(tmp_path / "store")
    first = compute(grid(0, 100, T=[5.0, 7.5]), store)
    assert first.attrs["points_computed"] == 200
    more = grid(-50, 200, T=[5.0, 7.5, 10.0])
    p = plan(more, store)
    assert p.points_to_compute == 200 * 3 - 200
    ds = compute(more, store)
    assert ds.attrs["points_computed"] == 400
    same_bits(ds, more)


@pytest.mark.parametrize("shape", [(1000, 10, 100, 1000), (1000, 7, 3, 1000)])
def test_the_planner_pads_no_survey_grid(tmp_path, shape):
    """Issue 14's grids (1e9 and 2.1e7 points) on an empty store: the planner's count is
    the request itself (it used to be 2.15x and 25x)."""
    n_eps, n_T, n_dT, n_dV = shape
    spec = GridSpec.from_dict({"model": "single_level", "axes": {
        "eps": {"start": -50.0, "stop": -50.0 + 0.1 * (n_eps - 1), "num": n_eps},
        "T": {"start": 1.0, "stop": float(n_T), "num": n_T},
        "dT": {"start": 0.0, "stop": 0.08 * (n_dT - 1), "num": n_dT},
        "dV": {"start": -50.0, "stop": -50.0 + 0.1 * (n_dV - 1), "num": n_dV}}})
    p = plan(spec, Store(tmp_path / "store"))
    assert p.points_to_compute == p.points == spec.size
    assert p.points_stored == 0 and len(p.missing) == len(p.needed) > 1


def test_a_kill_between_the_data_write_and_the_commit_leaves_nothing_visible(
        tmp_path, monkeypatch):
    """The shard objects are written, the commits never happen: no dataset, no record; the
    stored dataset sharing those shards still reads right; the next compute computes exactly
    the points no record holds (it replaces orphaned objects, completes merged ones)."""
    store = Store(tmp_path / "store")
    base = grid(0, 100)
    compute(base, store)

    class Killed(BaseException):
        pass

    def killed(self, shard, record):
        raise Killed

    real = family_module.Family.commit
    monkeypatch.setattr(family_module.Family, "commit", killed)
    wider = grid(-40, 200)
    with pytest.raises(Killed):
        compute(wider, store)
    monkeypatch.setattr(family_module.Family, "commit", real)
    assert held_points(store, base) == base.size  # no record names the new points
    with pytest.raises(StoreError):
        store.open(wider)
    with pytest.raises(ParameterError):
        store.request(spec_id(wider))
    same_bits(store.open(spec_id(base)).load(), base)
    assert store.verify() == []
    ds = compute(wider, store)
    same_bits(ds, wider)
    assert ds.attrs["points_computed"] == wider.size - base.size
    assert store.verify() == []


def test_verify_repair_and_gc_on_partial_shards(tmp_path):
    store = Store(tmp_path / "store")
    a, b = grid(0, 100), grid(200, 60)
    compute(a, store)
    compute(b, store)
    fam = store.family(FamilyLayout.from_spec(a), create=False)
    # a record that claims more than its object holds: verify names it, a read refuses it
    second = 2**31 // 64 + 1  # the eps shard of k = 64..127, of which a holds 64..99
    cut = sorted(s for s in fam.committed() if s[0] == second)
    whole = [[[0, n] for n in fam.layout.shard_shape]]
    for shard in cut:
        path = Path(store.root) / fam.prefix / "commits" / ".".join(map(str, shard))
        record = fam.commit_record(shard)
        path.unlink()
        path.write_text(json.dumps({**record, "boxes": whole}) + "\n")
    bad = store.verify()
    assert cut and {r.problem for r in bad} == {"points its record holds were never computed"}
    assert {r.shard for r in bad} == set(cut)
    wide = grid(64, 64)  # all of that shard along eps: the record says it is stored
    assert plan(wide, store).points_to_compute == 0
    with pytest.raises(StoreCorrupted):
        compute(wide, store).load()
    store.repair()
    assert store.verify() == []
    same_bits(store.open(spec_id(a)).load(), a)
    # gc keeps a family while a dataset refers to it, whatever the other datasets do
    store.remove_request(spec_id(b))
    assert store.gc(grace_seconds=0)["families_removed"] == 0
    same_bits(store.open(spec_id(a)).load(), a)
    store.remove_request(spec_id(a))
    for rid in [r["id"] for r in store.requests()]:
        store.remove_request(rid)
    assert store.gc(grace_seconds=0)["families_removed"] == 1


# --- the cache hit -------------------------------------------------------------------------

def test_a_complete_dataset_is_served_without_reading_commit_records(tmp_path, monkeypatch):
    store = Store(tmp_path / "store")
    spec = grid(-100, 300)
    compute(spec, store)
    reads = []
    real = family_module.Family.records

    def counting(self, shards):
        reads.append(len(list(shards)))
        return real(self, shards)

    monkeypatch.setattr(family_module.Family, "records", counting)
    monkeypatch.setattr(family_module.Family, "commit_record",
                        lambda self, shard: reads.append(1) or None)
    ds = compute(spec, store)
    assert ds.attrs["points_computed"] == 0 and reads == []
    same_bits(ds, spec)
    same_bits(store.open(spec_id(spec)).load(), spec)
    assert reads == []


def test_the_cache_hit_never_serves_a_wrong_number(tmp_path):
    store = Store(tmp_path / "store")
    spec = grid(-100, 300)
    compute(spec, store)
    fam = store.family(FamilyLayout.from_spec(spec), create=False)
    objects = sorted((Path(store.root) / fam.prefix / "J_L" / "c").rglob("*"))
    objects = [p for p in objects if p.is_file()]
    # a shard object replaced by one holding less (as a lost update would leave it)
    victim = objects[len(objects) // 2]
    shard = tuple(int(x) for x in victim.relative_to(victim.parents[1]).parts)
    encoder = fam._encoder("J_L")
    victim.write_bytes(encoder.encode(np.full(fam.layout.shard_shape,
                                              not_computed(np.float64))))
    with pytest.raises(StoreCorrupted) as exc:
        compute(spec, store).load()
    assert exc.value.shard == shard and "never computed" in str(exc.value)
    victim.unlink()  # and a missing one
    with pytest.raises(StoreCorrupted):
        store.open(spec_id(spec)).load()
    store.repair()
    assert store.verify() == []
    same_bits(compute(spec, store), spec)


def test_a_changed_slot_registry_is_never_trusted(tmp_path):
    store = Store(tmp_path / "store")
    spec = grid(0, 100, T=[5.0, 7.5])
    compute(spec, store)
    fam = store.family(FamilyLayout.from_spec(spec), create=False)
    slots = Path(store.root) / fam.prefix / "slots"
    for f in sorted(slots.rglob("*")):
        if f.is_file():
            f.unlink()
    assert store._hit(spec) is None  # the record's digest no longer matches
    ds = compute(spec, store)
    same_bits(ds, spec)
    assert store._hit(spec) is not None


def test_the_sentinel_is_no_number_a_kernel_makes():
    for dtype in (np.float64, np.float32):
        value = not_computed(dtype)
        assert np.isnan(value) and is_not_computed(np.asarray([value])).all()
        # arithmetic on it gives a quiet NaN: never the sentinel again
        with np.errstate(invalid="ignore"):
            assert not is_not_computed(np.asarray([value + 0.0, value * 1.0])).any()
        assert not is_not_computed(np.asarray([np.nan], dtype=dtype)).any()


# --- the plane reader ------------------------------------------------------------------------

def test_slice_of_every_pair_of_axes_equals_evaluate(tmp_path):
    store = Store(tmp_path / "store")
    spec = GridSpec.from_dict({"model": "single_level", "axes": {
        "eps": {"start": -3.0, "stop": 3.0, "num": 61},
        "T": {"start": 1.0, "stop": 4.0, "num": 4},
        "dT": {"start": 0.0, "stop": 1.5, "num": 4},
        "dV": {"start": -2.0, "stop": 2.0, "num": 21}}})
    compute(spec, store)
    values = {d: spec.axis_values(d) for d in spec.dims}
    pairs = [(x, y) for x in spec.dims for y in spec.dims if x != y]
    for n, (x, y) in enumerate(pairs):
        at = {d: float(values[d][(n * 7 + i) % len(values[d])])
              for i, d in enumerate(spec.dims) if d not in (x, y)}
        plane = store.slice(spec_id(spec), x=x, y=y, at=at)
        assert plane[OUTPUTS[0]].dims == (y, x)
        ref = phasemap.evaluate(**{x: values[x], y: values[y], **at}).transpose(y, x)
        for name in OUTPUTS:
            assert plane[name].values.tobytes() == ref[name].values.tobytes(), (x, y, name)
            assert plane[name].attrs.get("long_name"), name
        assert plane["valid"].values.tobytes() == ref["valid"].values.tobytes()
    only = store.slice(spec, x="eps", y="dV", at={"T": 2.0, "dT": 0.5}, variables=["regime"])
    assert list(only.data_vars) == ["regime"]


def test_slice_refuses_bad_arguments_naming_them(tmp_path):
    store = Store(tmp_path / "store")
    spec = grid(0, 50)
    compute(spec, store)
    cases = [({"x": "eps", "y": "mu"}, "y"), ({"x": "eps", "y": "eps"}, "y"),
             ({"x": "eps", "y": "dV", "at": {"T": 1.0}}, "at"),
             ({"x": "eps", "y": "dV", "variables": ["nope"]}, "variables")]
    for kwargs, param in cases:
        with pytest.raises(ParameterError) as exc:
            store.slice(spec, **kwargs)
        assert exc.value.param == param
    with pytest.raises(StoreError):  # not stored: nothing is computed
        store.slice(grid(1000, 50), x="eps", y="dV")


def test_concurrent_writers_completing_the_same_shards_lose_nothing(tmp_path):
    """Four threads, each its own Store and compute, complete the same shards with windows
    that interleave (every shard is cut by every window): the shard lock makes each
    read-modify-write see the others' records, so no points are lost or computed twice."""
    import threading

    root = tmp_path / "store"
    specs = [grid(k0, 37, dv=(-1.0, 1.0, 3)) for k0 in (0, 37, 74, 111)]
    errors: list[BaseException] = []
    done = {}

    def run(i):
        try:
            done[i] = compute(specs[i], Store(root)).attrs["points_computed"]
        except BaseException as exc:  # reported on the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(specs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    store = Store(root)
    assert sum(done.values()) == 4 * 37 * 3 == held_points(store, specs[0])
    assert store.verify() == []
    for spec in specs:
        same_bits(store.open(spec_id(spec)).load(), spec)
