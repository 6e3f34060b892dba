"""The store as a cache: reuse, extension, provenance, verify/repair, rm/gc, round trip.

Every test writes a real Zarr store under pytest's ``tmp_path`` and computes on a real
in-process dask cluster (one per module, shared). Expected shard counts are derived here from
the documented index rule (lattice index ``k`` lives at array index ``k + 2**31``; shards are
aligned to multiples of their side; an explicit value has a slot of side 1) and the family's
shard shape, so the tests keep holding when the shard geometry is tuned.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import phasemap
from phasemap import GridSpec, ParameterError, StoreError
from phasemap.regimes import MACHINE_LABELS, REGIME_LABELS
from phasemap.store import FamilyLayout, Store, compute, spec_id

OFFSET = 2**31
OUTPUTS = ("J_L", "Q_L", "Q_R", "P", "s", "p1", "regime", "machine")


@pytest.fixture(scope="module")
def client():
    """A real in-process cluster for computing shards. Like the CLI's embedded default it is
    not made dask's default scheduler, so reading small windows back stays on threads."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address=None) as cluster, \
            Client(cluster, set_as_default=False) as c:
        yield c


@pytest.fixture(autouse=True)
def _no_default_store(tmp_path, monkeypatch):
    # Nothing here may fall back to data/store: point the default at a scratch directory.
    monkeypatch.setenv("PHASEMAP_STORE", str(tmp_path / "default-store"))


def grid(eps=(-40.0, 40.0, 801), dV=(-5.0, 5.0, 11), T=None, dtype="float64", name=None,
         **params):
    """A spec over eps (step 0.1) and dV (step 1), or eps and explicit T values."""
    axes: dict = {"eps": {"start": eps[0], "stop": eps[1], "num": eps[2]}}
    if T is not None:
        axes["T"] = list(T)
        params.setdefault("dV", 5.0)
    else:
        axes["dV"] = {"start": dV[0], "stop": dV[1], "num": dV[2]}
    params.setdefault("dT", 5.0)
    return GridSpec.from_dict({"model": "single_level", "params": params, "axes": axes,
                               "dtype": dtype, "name": name})


def assert_bitwise_equal(ds, ref, names=OUTPUTS):
    """Same variables, dims, dtypes, coordinates and bytes (NaNs included)."""
    assert set(names) <= set(ds.data_vars)
    for dim in ref.dims:
        a, b = np.asarray(ds[dim].values), np.asarray(ref[dim].values)
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), dim
    for name in names:
        a, b = ds[name], ref[name]
        assert a.dims == b.dims, name
        av, bv = np.asarray(a.values), np.asarray(b.values)
        assert av.dtype == bv.dtype, (name, av.dtype, bv.dtype)
        assert av.shape == bv.shape, name
        assert av.tobytes() == bv.tobytes(), f"{name} differs from the reference"


def lattice_shards(k_first: int, n: int, side: int) -> set[int]:
    """Shard indices along a lattice axis touched by lattice indices k_first..k_first+n-1."""
    return set(range((k_first + OFFSET) // side, (k_first + n - 1 + OFFSET) // side + 1))


def shard_files(store: Store, var: str = "J_L") -> list[Path]:
    root = Path(store.root) / "families"
    return sorted(p for p in root.glob(f"*/{var}/c/**/*") if p.is_file())


# --- compute twice, equal to evaluate ---------------------------------------------------

def test_compute_twice_computes_nothing_and_equals_evaluate(tmp_path, client):
    spec = grid()
    store = Store(tmp_path / "store")
    layout = FamilyLayout.from_spec(spec)
    se, sv = layout.shard_shape
    shards = len(lattice_shards(-400, 801, se)) * len(lattice_shards(-5, 11, sv))

    first = compute(spec, store, client=client)
    # partial shards: exactly the requested points, though they lie in several shards
    assert shards > 1
    assert first.attrs["points_computed"] == spec.size
    assert first.attrs["points_reused"] == 0
    ref = phasemap.evaluate_spec(spec)
    assert tuple(first.data_vars) == tuple(ref.data_vars)
    assert_bitwise_equal(first, ref)

    t0 = time.perf_counter()
    second = compute(spec, store, client=client)
    seconds = time.perf_counter() - t0
    print(f"second compute in-process: {seconds:.3f} s")
    assert second.attrs["points_computed"] == 0
    assert second.attrs["points_reused"] == spec.size
    assert_bitwise_equal(second, first)
    assert second.attrs["dataset_id"] == first.attrs["dataset_id"] == spec_id(spec)
    # a lazy dataset: nothing is read until asked for
    assert all(v.chunks is not None for v in second.data_vars.values())


# --- reuse on extension -----------------------------------------------------------------

def test_extending_a_linear_axis_computes_only_the_new_shards(tmp_path, client):
    store = Store(tmp_path / "store")
    old = grid(eps=(-40.0, 40.0, 801))
    layout = FamilyLayout.from_spec(old)
    se, sv = layout.shard_shape
    dv_shards = lattice_shards(-5, 11, sv)
    compute(old, store, client=client)

    new = grid(eps=(-40.0, 60.0, 1001))
    assert FamilyLayout.from_spec(new).key == layout.key  # same family: same lattice
    fresh = lattice_shards(-400, 1001, se) - lattice_shards(-400, 801, se)
    ds = compute(new, store, client=client)
    assert fresh  # some new points fall in stored shards, some in new ones
    assert len(dv_shards) == 2
    assert ds.attrs["points_computed"] == (1001 - 801) * 11  # only the new points
    assert ds.attrs["points_reused"] == 801 * 11
    assert_bitwise_equal(ds, phasemap.evaluate_spec(new))

    # an extension that surely leaves the stored shards: one whole eps shard beyond them
    last = max(lattice_shards(-400, 1001, se))
    k_stop = (last + 1) * se - OFFSET + se // 2
    far = grid(eps=(-40.0, k_stop / 10, k_stop + 400 + 1))
    fresh = lattice_shards(-400, k_stop + 401, se) - lattice_shards(-400, 1001, se)
    assert fresh
    ds = compute(far, store, client=client)
    assert ds.attrs["points_computed"] == (far.size - 1001 * 11)
    assert ds.attrs["points_reused"] == 1001 * 11

    # any sub-range on the same lattice is served from the store
    sub = grid(eps=(-20.0, 20.0, 401), dV=(-2.0, 2.0, 5))
    ds = compute(sub, store, client=client)
    assert ds.attrs["points_computed"] == 0
    assert ds.attrs["points_reused"] == sub.size
    assert_bitwise_equal(ds, phasemap.evaluate_spec(sub))


def test_explicit_values_axis_reuses_every_value_it_has_seen(tmp_path, client):
    store = Store(tmp_path / "store")
    spec = grid(T=[5.0, 7.5])
    layout = FamilyLayout.from_spec(spec)
    _, st_ = layout.shard_shape
    assert st_ == 1  # one slot per explicit value
    ds = compute(spec, store, client=client)
    assert ds.attrs["points_computed"] == 2 * 801  # the requested slots only, no padding

    more = grid(T=[5.0, 7.5, 10.0])
    assert FamilyLayout.from_spec(more).key == layout.key
    ds = compute(more, store, client=client)
    assert ds.attrs["points_computed"] == 801  # the slot for 10
    assert ds.attrs["points_reused"] == 801 * 2
    assert_bitwise_equal(ds, phasemap.evaluate_spec(more))

    for values in ([7.5], [5.0, 10.0]):
        ds = compute(grid(T=values), store, client=client)
        assert ds.attrs["points_computed"] == 0
        assert_bitwise_equal(ds, phasemap.evaluate_spec(grid(T=values)))


def test_fixed_parameters_and_dtype_make_separate_families():
    base = FamilyLayout.from_spec(grid())
    assert FamilyLayout.from_spec(grid(dT=4.0)).key != base.key
    assert FamilyLayout.from_spec(grid(dtype="float32")).key != base.key
    # a different step is another lattice; a shifted window on the same step is not
    assert FamilyLayout.from_spec(grid(eps=(-40.0, 40.0, 401))).key != base.key
    assert FamilyLayout.from_spec(grid(eps=(-12.3, 7.7, 201))).key == base.key
    # the model's default written out explicitly is the same family
    assert FamilyLayout.from_spec(grid(mu=0.0)).key == base.key


# --- provenance and metadata ------------------------------------------------------------

def test_provenance_and_cf_attributes(tmp_path, client):
    spec = grid(T=[5.0, 7.5])
    ds = compute(spec, tmp_path / "store", client=client)
    a = ds.attrs
    for key in ("spec", "model_version", "phasemap_version", "created", "points_computed",
                "points_reused", "dataset_id"):
        assert key in a, key
    assert json.loads(a["spec"]) == spec.to_dict()
    assert GridSpec.from_dict(json.loads(a["spec"])) == spec
    assert a["model_version"] == phasemap.get_model("single_level").version
    assert a["phasemap_version"] == phasemap.__version__
    created = dt.datetime.fromisoformat(a["created"])
    assert abs((dt.datetime.now(dt.UTC) - created).total_seconds()) < 600
    assert a["points_computed"] > 0 and a["points_reused"] == 0
    assert a["dataset_id"] == spec_id(spec)
    assert a["Conventions"].startswith("CF-")

    for name in ("J_L", "Q_L", "Q_R", "P", "s", "p1"):
        assert ds[name].attrs.get("units"), name
        assert ds[name].attrs.get("long_name"), name
    for name, labels in (("regime", REGIME_LABELS), ("machine", MACHINE_LABELS)):
        attrs = ds[name].attrs
        assert list(attrs["flag_values"]) == list(range(len(labels)))
        assert attrs["flag_meanings"].split() == list(labels)
        assert ds[name].dtype == np.int8
    for coord in ("eps", "T", "dT", "dV"):
        assert ds[coord].attrs.get("units") == "E0", coord


def test_float32_grid(tmp_path, client):
    spec = grid(dtype="float32")
    ds = compute(spec, tmp_path / "store", client=client).load()
    ref = phasemap.evaluate_spec(spec)
    for name in ("J_L", "Q_L", "Q_R", "P", "s", "p1"):
        assert ds[name].dtype == np.float32, name
    assert ds.eps.dtype == np.float64
    # J_L is stored: identical. The others are derived on read from the float32 J_L, so
    # they may differ from evaluate (which rounds float64 results) in the last float32 bit.
    assert_bitwise_equal(ds, ref, names=("J_L", "regime", "machine"))
    for name in ("Q_L", "Q_R", "P", "s", "p1"):
        np.testing.assert_allclose(ds[name].values, ref[name].values, rtol=4e-7, atol=1e-30,
                                   err_msg=name)


# --- opening and listing ----------------------------------------------------------------

def test_open_by_id_and_by_spec_and_requests_listing(tmp_path, client):
    store = Store(tmp_path / "store")
    spec = grid(T=[5.0, 7.5], name="two temperatures")
    ds = compute(spec, store, client=client)
    rid = ds.attrs["dataset_id"]

    again = Store(str(tmp_path / "store"))  # a fresh handle on the same directory
    assert_bitwise_equal(again.open(rid), ds)
    assert_bitwise_equal(again.open(spec), ds)

    records = again.requests()
    assert [r["id"] for r in records] == [rid]
    r = records[0]
    assert r["spec"] == spec.to_dict() and r["family"] == ds.attrs["family"]
    assert r["shape"] == [801, 2] and r["dims"] == ["eps", "T"] and r["points"] == 1602
    assert r["points_computed"] == ds.attrs["points_computed"]
    assert again.request(rid)["id"] == rid

    with pytest.raises(StoreError, match="compute it first"):
        again.open(grid(T=[20.0]))
    with pytest.raises(ParameterError, match="dataset"):
        again.open("0123456789abcdef")
    with pytest.raises(ParameterError, match="dataset"):
        again.request("../../etc/passwd")


# --- verify and repair ------------------------------------------------------------------

def test_verify_finds_truncated_and_flipped_shards_and_repair_restores_them(tmp_path,
                                                                             client):
    store = Store(tmp_path / "store")
    spec = grid()
    original = compute(spec, store, client=client).load()
    assert store.verify() == []
    files = shard_files(store)
    assert len(files) >= 2
    pristine = {f: f.read_bytes() for f in files}

    truncated, flipped = files[0], files[-1]
    with truncated.open("r+b") as f:
        f.truncate(truncated.stat().st_size // 2)
    with flipped.open("r+b") as f:
        f.seek(flipped.stat().st_size // 3)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x40]))

    def shard_of(path: Path) -> tuple[int, ...]:
        return tuple(int(p) for p in path.relative_to(path.parents[len(spec.dims) - 1]).parts)

    bad = store.verify()
    found = {r.shard: r.problem for r in bad}
    assert set(found) == {shard_of(truncated), shard_of(flipped)}, bad
    assert "size" in found[shard_of(truncated)]
    assert "checksum" in found[shard_of(flipped)].lower()
    assert all(r.variable == "J_L" for r in bad)

    repaired = store.repair(client=client)
    assert {r.shard for r in repaired} == set(found)
    assert store.verify() == []
    for f, data in pristine.items():
        assert f.read_bytes() == data, f"{f} not restored byte for byte"
    restored = compute(spec, store, client=client)
    assert restored.attrs["points_computed"] == 0
    assert_bitwise_equal(restored, original)


def test_a_missing_shard_object_is_reported(tmp_path, client):
    store = Store(tmp_path / "store")
    compute(grid(T=[7.5]), store, client=client)
    victim = shard_files(store)[0]
    victim.unlink()
    bad = store.verify()
    assert [r.problem for r in bad] == ["missing"]
    store.repair(client=client)
    assert store.verify() == [] and victim.exists()


# --- rm and gc --------------------------------------------------------------------------

def test_rm_then_gc_deletes_the_data(tmp_path, client):
    store = Store(tmp_path / "store")
    keep = compute(grid(T=[7.5]), store, client=client)
    drop = compute(grid(dtype="float32"), store, client=client)
    drop_dir = Path(store.root) / "families" / drop.attrs["family"]
    keep_dir = Path(store.root) / "families" / keep.attrs["family"]
    assert drop_dir.is_dir() and keep_dir.is_dir()
    (keep_dir / ".tmp-leftover").write_bytes(b"half a shard")

    store.remove_request(drop.attrs["dataset_id"])
    assert [r["id"] for r in store.requests()] == [keep.attrs["dataset_id"]]
    assert drop_dir.is_dir()  # data goes at gc, not at rm
    with pytest.raises(ParameterError):
        store.remove_request(drop.attrs["dataset_id"])

    # no compute holds a lease on the unreferenced family: it goes at once; the grace
    # period keeps young temporaries only
    assert store.gc() == {"families_removed": 1, "temporaries_removed": 0,
                          "leases_removed": 0}
    assert not drop_dir.exists() and (keep_dir / ".tmp-leftover").exists()
    res = store.gc(grace_seconds=0)
    assert res == {"families_removed": 0, "temporaries_removed": 1, "leases_removed": 0}
    assert not (keep_dir / ".tmp-leftover").exists()
    assert store.families() == [keep.attrs["family"]]
    assert store.verify() == []
    assert_bitwise_equal(store.open(keep.attrs["dataset_id"]), keep)
    # gc of a store whose every dataset is removed leaves no data
    store.remove_request(keep.attrs["dataset_id"])
    store.gc(grace_seconds=0)
    assert store.families() == []
    assert not any(p.is_file() for p in (Path(store.root) / "families").rglob("c/**/*"))


# --- round trip, as a property ----------------------------------------------------------

@pytest.fixture(scope="module")
def shared_store(tmp_path_factory):
    return Store(tmp_path_factory.mktemp("roundtrip") / "store")


@st.composite
def windows(draw):
    """A small window on one lattice: eps step 1/4, dV step 1/2, and some of three T."""
    k_eps = draw(st.integers(-300, 300))
    n_eps = draw(st.integers(2, 40))
    k_dv = draw(st.integers(-20, 20))
    n_dv = draw(st.integers(2, 6))
    temps = draw(st.lists(st.sampled_from([5.0, 7.5, 10.0]), min_size=1, max_size=3,
                          unique=True))
    axes = {"eps": {"start": k_eps / 4, "stop": (k_eps + n_eps - 1) / 4, "num": n_eps},
            "T": sorted(temps),
            "dV": {"start": k_dv / 2, "stop": (k_dv + n_dv - 1) / 2, "num": n_dv}}
    return GridSpec.from_dict({"params": {"dT": 5.0}, "axes": axes})


@settings(max_examples=15, deadline=None)
@given(spec=windows())
def test_round_trip_through_the_store_is_identical(spec, shared_store, client):
    ds = compute(spec, shared_store, client=client)
    assert_bitwise_equal(ds, phasemap.evaluate_spec(spec))
    again = compute(spec, shared_store, client=client)
    assert again.attrs["points_computed"] == 0
    assert math.prod(ds.J_L.shape) == spec.size


# --- fsspec URLs ------------------------------------------------------------------------

def test_an_fsspec_url_store_works_like_a_directory(client):
    """``memory://`` takes the same code path as ``s3://`` (fsspec, one PUT per object)."""
    import fsspec

    url = f"memory://phasemap-test-{os.getpid()}-{time.monotonic_ns()}/store"
    try:
        store = Store(url)
        assert not store.local
        spec = grid(T=[7.5])
        ds = compute(spec, url, client=client)
        assert ds.attrs["points_computed"] > 0
        assert_bitwise_equal(ds, phasemap.evaluate_spec(spec))
        assert compute(spec, store, client=client).attrs["points_computed"] == 0
        assert store.verify() == []
        assert [r["id"] for r in store.requests()] == [ds.attrs["dataset_id"]]
        assert_bitwise_equal(store.open(ds.attrs["dataset_id"]), ds)
    finally:
        fsspec.filesystem("memory").rm(url.split("://", 1)[1].split("/")[0], recursive=True)


# --- commit records on a local disk -------------------------------------------------------

def _records(store: Store) -> list[Path]:
    return sorted(p for p in (Path(store.root) / "families").glob("*/commits/*")
                  if not p.name.startswith("."))


def test_local_commit_records_are_links_to_shared_record_files(tmp_path, monkeypatch):
    """Each committed shard's record is found under its name; names are hard links to a
    few record files (one line per shard), and no hidden file is left behind."""
    from phasemap.store.core import _RecordFile

    monkeypatch.setattr(_RecordFile, "RECORDS", 3)  # several files from a small grid
    store = Store(tmp_path / "store")
    spec = grid(T=[5.0, 6.0, 7.5, 8.0, 10.0])
    ds = compute(spec, store)  # the embedded default: a thread per core, one Family
    layout = FamilyLayout.from_spec(spec)
    fam = store.family(layout, create=False)
    names = _records(store)
    assert len(names) == len(fam.committed()) > _RecordFile.RECORDS
    inodes = {p.stat().st_ino for p in names}
    # a file per RECORDS commits (a thread per core may open at most one more each)
    assert len(inodes) <= math.ceil(len(names) / _RecordFile.RECORDS) + 2
    assert sum(fam.commit_record(s)["points"] for s in fam.committed()) == spec.size
    for shard in fam.committed():
        record = fam.commit_record(shard)
        assert tuple(record["shard"]) == shard
        (box,) = record["boxes"]  # the window's part of the shard, nothing else
        assert record["points"] == (box[0][1] - box[0][0]) * (box[1][1] - box[1][0])
        assert record["sizes"]["J_L"] == store.size_of(fam.shard_key("J_L", shard))
    assert not [p for p in (Path(store.root) / "families").glob("*/commits/.*")]
    assert store.verify() == []
    assert_bitwise_equal(ds, phasemap.evaluate_spec(spec))


def test_commit_records_without_hard_links(tmp_path, monkeypatch):
    """Where the filesystem refuses hard links, every record is a file of its own."""
    link = os.link

    def refuse(src, dst, *a, **k):  # Zarr links too (exclusive writes): only ours fail
        if f"{os.sep}commits{os.sep}" in str(dst):
            raise PermissionError(1, "Operation not permitted", dst)
        return link(src, dst, *a, **k)

    monkeypatch.setattr(os, "link", refuse)
    store = Store(tmp_path / "store")
    spec = grid(T=[5.0, 7.5])
    ds = compute(spec, store)
    names = _records(store)
    assert names and len({p.stat().st_ino for p in names}) == len(names)
    assert all(p.stat().st_nlink == 1 for p in names)
    fam = store.family(FamilyLayout.from_spec(spec), create=False)
    assert {tuple(fam.commit_record(s)["shard"]) for s in fam.committed()} == fam.committed()
    assert store.verify() == []
    assert_bitwise_equal(ds, phasemap.evaluate_spec(spec))


def test_a_recommitted_shard_and_a_removed_record_file_name(tmp_path):
    """Committing a shard again replaces its record; a record file whose hidden name was
    removed (``cache gc`` of an idle writer) is replaced by a new one on the next commit."""
    store = Store(tmp_path / "store")
    spec = grid(T=[5.0, 7.5])
    compute(spec, store)
    fam = store.family(FamilyLayout.from_spec(spec), create=False)
    first, second = sorted(fam.committed())[:2]
    fam.commit(first, {"shard": list(first), "points": 1, "sizes": {}, "note": "again"})
    assert fam.commit_record(first)["note"] == "again"
    hidden = list((Path(store.root) / "families").glob("*/commits/.tmp-records-*"))
    assert len(hidden) == 1
    hidden[0].unlink()
    fam.commit(second, {"shard": list(second), "points": 1, "sizes": {}, "note": "new file"})
    assert fam.commit_record(second)["note"] == "new file"
    assert fam.commit_record(first)["note"] == "again"
    fam.close()
    assert not list((Path(store.root) / "families").glob("*/commits/.*"))
    assert fam.committed() == set(store.family(FamilyLayout.from_spec(spec),
                                               create=False).committed())


def test_an_error_in_one_shard_stops_the_rest_and_keeps_what_was_committed(tmp_path,
                                                                          monkeypatch):
    """The embedded scheduler: the error reaches the caller, no shard starts after it beyond
    the few already handed to the pool, and every shard committed before it stays usable."""
    from phasemap.cluster import usable_cores
    from phasemap.store import core

    spec = grid(T=[3.0 + 0.5 * i for i in range(40)])  # 40 explicit values: 80 shards
    store = Store(tmp_path / "store")
    layout = FamilyLayout.from_spec(spec)
    real = core.Family.compute_shard
    started = []

    def failing(self, shard, slot_values, box=None):
        started.append(shard)
        if len(started) == 5:
            raise RuntimeError("disk on fire")
        return real(self, shard, slot_values, box)

    monkeypatch.setattr(core.Family, "compute_shard", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        compute(spec, store)
    total = len(core.plan(spec, store).needed)
    threads = min(usable_cores(), total)
    # at most the tasks in the pool's hands when the error surfaced (twice the threads)
    assert 5 <= len(started) <= 5 + 2 * threads < total
    fam = store.family(layout, create=False)
    assert len(fam.committed()) <= len(started) - 1
    assert store.verify() == []
    monkeypatch.setattr(core.Family, "compute_shard", real)
    kept = sum(fam.commit_record(s)["points"] for s in fam.committed())
    again = compute(spec, store)
    assert again.attrs["points_computed"] == spec.size - kept
    assert_bitwise_equal(again, phasemap.evaluate_spec(spec))


def test_shard_points_outside_the_domain_are_stored_as_nan(tmp_path):
    """A request computes only its part of each shard: the rest holds the "never computed"
    value. A shard whose commit record is unreadable is rebuilt whole; where its
    lattice values leave the model's domain (here T_R = T - dT/2 <= 0 below the window's
    lowest T) the stored J_L is then NaN, and every other point holds the kernel's value."""
    from phasemap.models import single_level_closed_form as single_level
    from phasemap.store.layout import is_not_computed

    spec = GridSpec.from_dict({"model": "single_level", "params": {"dT": 0.8, "dV": 1.0},
                               "axes": {"eps": {"start": -2.0, "stop": 2.0, "num": 5},
                                        "T": {"start": 0.5, "stop": 2.0, "num": 4}}})
    store = Store(tmp_path / "store")
    layout = FamilyLayout.from_spec(spec)
    fam = store.family(layout, create=False)
    eps_ax, T_ax = layout.axes

    def regions():
        for shard in sorted(fam.committed()):
            region = tuple(slice(i * ax.shard, (i + 1) * ax.shard)
                           for ax, i in zip(layout.axes, shard, strict=True))
            yield shard, np.asarray(fam.array("J_L")[region])

    ds = compute(spec, store)
    assert ds.attrs["points_computed"] == spec.size
    outside = 0
    for shard, stored in regions():
        (box,) = fam.commit_record(shard)["boxes"]
        inside = np.zeros(stored.shape, bool)
        inside[tuple(slice(*r) for r in box)] = True
        assert is_not_computed(stored[~inside]).all()
        assert not is_not_computed(stored[inside]).any()
        outside += int((~inside).sum())
    assert outside

    for record in (Path(store.root) / "families").glob("*/commits/*"):
        record.unlink()  # records that name no boxes: the next compute rebuilds them whole
        record.write_text("damaged\n")
    store.remove_request(ds.attrs["dataset_id"])  # (else its record answers: complete)
    again = compute(spec, store)
    assert again.attrs["points_computed"] == len(fam.committed()) * layout.shard_points > 0
    seen_bad = seen_good = 0
    for shard, stored in regions():
        eps = eps_ax.shard_values(shard[0])[:, None]
        T = T_ax.shard_values(shard[1])[None, :]
        bad = np.broadcast_to((T <= 0) | (T - 0.4 <= 0), stored.shape)
        assert np.isnan(stored[bad]).all() and not is_not_computed(stored).any()
        expected = np.broadcast_to(single_level(eps, np.where(bad, 1.0, T), 0.8,
                                                         1.0)["J_L"], stored.shape)
        assert np.array_equal(stored[~bad], expected[~bad])
        seen_bad += int(bad.sum())
        seen_good += int((~bad).sum())
    assert seen_bad and seen_good
    assert np.isfinite(again.J_L.values).all()
    assert_bitwise_equal(again, phasemap.evaluate_spec(spec))


# --- issue 12: a cache that never serves a wrong number -----------------------------------

def _family_dir(store: Store, spec: GridSpec) -> Path:
    return Path(store.root) / "families" / FamilyLayout.from_spec(spec).key


def test_explicit_values_that_share_a_hash_slot_get_their_own_results(tmp_path):
    """Issue 12.1: 5.34392 and 5.64943 share the 31-bit hash slot 657083268; each must be
    computed and read as itself (the second used to reuse the first's shard)."""
    from phasemap.store.layout import slot_of

    assert slot_of(5.34392) == slot_of(5.64943) == 657083268
    store = Store(tmp_path / "store")
    first, second = grid(eps=(-10.0, 10.0, 201), T=[5.34392]), \
        grid(eps=(-10.0, 10.0, 201), T=[5.64943])
    a = compute(first, store)
    assert_bitwise_equal(a, phasemap.evaluate_spec(first))
    b = compute(second, store)
    assert b.attrs["points_computed"] > 0 and b.attrs["points_reused"] == 0
    assert_bitwise_equal(b, phasemap.evaluate_spec(second))
    both = grid(eps=(-10.0, 10.0, 201), T=[5.34392, 5.64943])
    ab = compute(both, store)
    assert ab.attrs["points_computed"] == 0
    assert_bitwise_equal(ab, phasemap.evaluate_spec(both))
    assert_bitwise_equal(store.open(spec_id(first)), phasemap.evaluate_spec(first))
    at = store.point(second, {"eps": 0.0, "T": 5.64943})
    ref = phasemap.evaluate_spec(second).sel(eps=0.0, T=5.64943)
    assert at["values"]["J_L"] == float(ref.J_L)


def test_a_commit_record_for_another_value_is_never_reused(tmp_path):
    """Issue 12.1: a slot whose registry entry was lost and reassigned to another value
    holds a shard computed for the old value; its commit record names that value, so the
    planner recomputes it instead of serving it."""
    store = Store(tmp_path / "store")
    old = grid(eps=(-10.0, 10.0, 201), T=[5.34392])
    compute(old, store)
    shutil.rmtree(_family_dir(store, old) / "slots")
    new = grid(eps=(-10.0, 10.0, 201), T=[5.64943])
    ds = compute(new, store)
    assert ds.attrs["points_computed"] > 0
    assert_bitwise_equal(ds, phasemap.evaluate_spec(new))


def test_a_committed_shard_that_cannot_be_read_is_an_error_never_nan(tmp_path):
    """Issue 12.2: a committed shard whose object is missing or corrupt raises
    StoreCorrupted on every read path (never fill values), without the store's path."""
    from phasemap.errors import StoreCorrupted

    store = Store(tmp_path / "store")
    spec = grid(T=[7.5])
    ds = compute(spec, store)
    rid = ds.attrs["dataset_id"]
    files = shard_files(store)
    files[0].unlink()
    with pytest.raises(StoreCorrupted) as info:
        store.open(rid).J_L.load()
    assert str(tmp_path) not in str(info.value)
    assert info.value.family == ds.attrs["family"] and info.value.variable == "J_L"
    with pytest.raises(StoreCorrupted):
        compute(spec, store).regime.load()
    with pytest.raises(StoreCorrupted):
        store.point(rid, {"eps": -1.0, "T": 7.5})  # in files[0], the lower shard
    assert [r.problem for r in store.verify()] == ["missing"]


def test_a_flipped_bit_is_an_error_on_read(tmp_path):
    from phasemap.errors import StoreCorrupted

    store = Store(tmp_path / "store")
    spec = grid(eps=(0.0, 4.0, 41), T=[7.5])  # one shard
    compute(spec, store)
    (victim,) = shard_files(store)
    data = bytearray(victim.read_bytes())
    data[100] ^= 0x40  # inside the first inner chunk (the one this window reads)
    victim.write_bytes(bytes(data))
    with pytest.raises(StoreCorrupted) as info:
        store.open(spec_id(spec)).J_L.load()
    assert "checksum" in str(info.value).lower() and str(tmp_path) not in str(info.value)


def test_the_cli_exits_non_zero_on_a_missing_committed_shard(tmp_path):
    from typer.testing import CliRunner

    from phasemap.cli import app

    store = Store(tmp_path / "store")
    spec = grid(T=[7.5])
    rid = compute(spec, store).attrs["dataset_id"]
    shard_files(store)[0].unlink()
    res = CliRunner().invoke(app, ["query", rid, "--store", store.root, "--at",
                                   "eps=-1,T=7.5"])
    assert res.exit_code != 0, res.output
    res = CliRunner().invoke(app, ["cache", "verify", "--store", store.root])
    assert res.exit_code == 1 and "missing" in res.output


def test_repair_rebuilds_damaged_metadata_and_never_deletes_first(tmp_path):
    """Issue 12.3: a damaged ``J_L/zarr.json`` is reported by verify and rebuilt from the
    family definition; the shards are kept (byte for byte) and the data read back equal."""
    store = Store(tmp_path / "store")
    spec = grid()
    original = compute(spec, store).load()
    pristine = {f: f.read_bytes() for f in shard_files(store)}
    meta = _family_dir(store, spec) / "J_L" / "zarr.json"
    good_meta = meta.read_bytes()
    meta.write_text('{"zarr_format": 3, "node_ty')
    bad = store.verify()
    assert bad and all(r.variable == "J_L" for r in bad)
    assert any("metadata" in r.problem for r in bad)
    store.repair()
    assert store.verify() == []
    assert meta.read_bytes() == good_meta
    assert {f: f.read_bytes() for f in shard_files(store)} == pristine
    again = compute(spec, store)
    assert again.attrs["points_computed"] == 0
    assert_bitwise_equal(again, original)


def test_repair_interrupted_leaves_every_problem_reported(tmp_path, monkeypatch):
    """Issue 12.3: repair recomputes in place; killed after its first shard, verify still
    reports the shards it did not reach (it used to uncommit them all first, then say ok)."""
    from phasemap.store import core

    store = Store(tmp_path / "store")
    spec = grid()
    original = compute(spec, store).load()
    files = shard_files(store)
    for f in files[:3]:
        data = bytearray(f.read_bytes())
        data[len(data) // 3] ^= 0x40
        f.write_bytes(bytes(data))
    real = core.Family.compute_shard
    calls = []

    def dying(self, shard, slot_values, box=None):
        calls.append(shard)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(self, shard, slot_values, box)

    monkeypatch.setattr(core.Family, "compute_shard", dying)
    with pytest.raises(KeyboardInterrupt):
        store.repair()
    monkeypatch.setattr(core.Family, "compute_shard", real)
    left = store.verify()
    assert len({r.shard for r in left}) == 2, left
    store.repair()
    assert store.verify() == []
    assert_bitwise_equal(compute(spec, store), original)


def test_verify_reports_a_recorded_dataset_with_a_shard_not_committed(tmp_path):
    store = Store(tmp_path / "store")
    spec = grid(T=[5.0, 7.5])
    compute(spec, store)
    record = sorted((_family_dir(store, spec) / "commits").iterdir())[0]
    record.unlink()
    bad = store.verify()
    assert len(bad) == 1 and "not committed" in bad[0].problem
    assert spec_id(spec) in bad[0].problem
    store.repair()
    assert store.verify() == []
    assert_bitwise_equal(store.open(spec_id(spec)), phasemap.evaluate_spec(spec))


def test_gc_never_deletes_what_a_live_compute_uses(tmp_path):
    """Issue 12.4: gc running while a compute is in flight (here from its progress callback,
    after its first shard) keeps the family; the compute ends with every shard committed."""
    store = Store(tmp_path / "store")
    spec = grid(T=[5.0, 6.0, 7.5, 8.0])
    ran = []

    def progress(done, total, points):
        if not ran:
            ran.append(Store(store.root).gc(grace_seconds=0))

    ds = compute(spec, store, progress=progress)
    assert ran and ran[0]["families_removed"] == 0
    assert store.verify() == []
    assert_bitwise_equal(ds, phasemap.evaluate_spec(spec))
    # the compute has ended: its lease is gone and the family is referenced
    assert store.leases() == []


def test_gc_honours_leases_and_drops_expired_ones(tmp_path):
    from phasemap.store import core

    store = Store(tmp_path / "store")
    spec = grid(T=[7.5])
    ds = compute(spec, store)
    store.remove_request(ds.attrs["dataset_id"])
    lease = core.Lease(store, [ds.attrs["family"]])
    lease.acquire()
    try:
        assert store.gc(grace_seconds=0)["families_removed"] == 0
    finally:
        lease.release()
    # a lease whose holder died long ago (its heartbeat is old) is not honoured
    stale = core.Lease(store, [ds.attrs["family"]])
    stale.write(heartbeat=time.time() - 10 * core.LEASE_TTL)
    res = store.gc(grace_seconds=0)
    assert res["families_removed"] == 1 and res["leases_removed"] == 1
    assert store.leases() == []


def test_compute_confirms_every_shard_is_committed_before_recording(tmp_path):
    """Issue 12.4: a shard object removed behind the compute's back (after it was
    committed) is found missing before the request is recorded, and computed again."""
    store = Store(tmp_path / "store")
    spec = grid(T=[5.0, 6.0, 7.5, 8.0])
    seen = []

    def progress(done, total, points):
        if not seen:
            seen.extend(shard_files(store))
            for f in seen:
                f.unlink()

    ds = compute(spec, store, progress=progress)
    assert seen
    assert store.verify() == []
    assert_bitwise_equal(ds, phasemap.evaluate_spec(spec))


def test_a_corrupt_request_record_and_a_stray_commit_file_stay_local(tmp_path):
    """Issue 12.5: listing, queries and verify keep working; the damage is reported."""
    from typer.testing import CliRunner

    from phasemap.cli import app

    store = Store(tmp_path / "store")
    spec = grid(T=[7.5])
    ds = compute(spec, store)
    (Path(store.root) / "requests" / "0123456789abcdef.json").write_text('{"id": "01')
    (_family_dir(store, spec) / "commits" / "README").write_text("not a record")
    problems: list = []
    assert [r["id"] for r in store.requests(problems=problems)] == [ds.attrs["dataset_id"]]
    assert len(problems) == 1 and "0123456789abcdef" in problems[0]
    again = compute(spec, store)
    assert again.attrs["points_computed"] == 0
    assert_bitwise_equal(again, phasemap.evaluate_spec(spec))
    assert_bitwise_equal(store.open(ds.attrs["dataset_id"]), again)
    found = {r.problem for r in store.verify()}
    assert any("0123456789abcdef" in p for p in found), found
    assert any("README" in p for p in found), found
    res = CliRunner().invoke(app, ["cache", "ls", "--store", store.root])
    assert res.exit_code == 0 and ds.attrs["dataset_id"] in res.output
    assert "0123456789abcdef" in res.output
    CliRunner().invoke(app, ["cache", "rm", "0123456789abcdef", "--store", store.root])
    assert not (Path(store.root) / "requests" / "0123456789abcdef.json").exists()


def test_huge_chunks_are_refused_naming_chunks():
    """Issue 12.10: an inner chunk of 2**24 points would be decoded by every point read."""
    spec = GridSpec.from_dict({"model": "single_level", "params": {"dT": 5.0, "dV": 5.0},
                               "axes": {"eps": {"start": -10, "stop": 10, "num": 201}},
                               "chunks": {"eps": 16777216}})
    with pytest.raises(ParameterError) as info:
        FamilyLayout.from_spec(spec)
    assert info.value.param == "chunks"


def test_a_request_creating_too_many_files_is_refused_before_writing(tmp_path):
    """Issue 12.10: two explicit lists of 300 values would make 90,000 one-point shards."""
    spec = GridSpec.from_dict({"model": "single_level", "params": {"dT": 5.0, "dV": 5.0},
                               "axes": {"T": [5 + i / 100 for i in range(300)],
                                        "eps": [i / 10 for i in range(300)]}})
    store = Store(tmp_path / "store")
    with pytest.raises(ParameterError) as info:
        compute(spec, store)
    assert info.value.param == "files"
    assert not (Path(store.root) / "families").exists()
    small = Store(tmp_path / "small", max_files=3)
    with pytest.raises(ParameterError):
        compute(grid(T=[5.0, 7.5]), small)


def test_the_store_quota_is_enforced(tmp_path):
    store = Store(tmp_path / "store", quota_bytes=100_000)
    with pytest.raises(ParameterError) as info:
        compute(grid(), store)
    assert info.value.param == "quota"
    assert not (Path(store.root) / "families").exists()
    roomy = Store(tmp_path / "store", quota_bytes=10**9)
    compute(grid(T=[7.5]), roomy)
    assert roomy.usage() > 0


def test_every_file_and_folder_has_one_mode(tmp_path):
    """Issue 12.11: shards, records, slots, requests and metadata alike follow the umask
    (0664/0775 under umask 002, for a store a group shares)."""
    old = os.umask(0o002)
    try:
        store = Store(tmp_path / "store")
        compute(grid(T=[5.0, 7.5]), store)
    finally:
        os.umask(old)
    modes = {}
    for p in Path(store.root).rglob("*"):
        modes.setdefault(oct(p.stat().st_mode & 0o777), []).append(p.name)
    files = {m for m, names in modes.items() if m != "0o775"}
    assert files == {"0o664"}, {m: n[:3] for m, n in modes.items()}


def test_gc_does_not_honour_the_lease_of_a_dead_local_process(tmp_path):
    """A compute killed with SIGKILL leaves its lease with a fresh heartbeat; its holder, a
    process of this machine, no longer exists, so gc neither keeps its family nor its
    temporaries (a live holder's lease, and one on another machine, are honoured)."""
    import subprocess
    import sys

    from phasemap.store import core

    store = Store(tmp_path / "store")
    ds = compute(grid(T=[7.5]), store)
    family = ds.attrs["family"]
    store.remove_request(ds.attrs["dataset_id"])
    temp = tmp_path / "store" / "families" / family / ".tmp-left-by-a-killed-writer"
    temp.write_bytes(b"")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(dead.stdout)

    def lease_of(pid, host):
        lease = core.Lease(store, [family])
        store.write_blob(lease.key, json.dumps({"families": [family], "heartbeat": time.time(),
                                                "host": host, "pid": pid}).encode())
        return lease

    alive = lease_of(os.getpid(), socket.gethostname())
    elsewhere = lease_of(pid, "another-machine")
    res = store.gc(grace_seconds=0)
    assert res["families_removed"] == 0 and temp.exists()
    store.delete(alive.key)
    store.delete(elsewhere.key)
    lease_of(pid, socket.gethostname())
    res = store.gc(grace_seconds=0)
    assert res == {"families_removed": 1, "temporaries_removed": 0, "leases_removed": 1}
    assert store.leases() == [] and not temp.exists()
