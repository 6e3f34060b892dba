"""The ``phasemap`` command line, driven for real.

Most commands run through typer's ``CliRunner`` (the real app, in this process, with its own
stdout and stderr); ``compute`` and a bad spec also run as real subprocesses. Every store is
under ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
from typer.testing import CliRunner

import phasemap
from phasemap import GridSpec
from phasemap.cli import app
from phasemap.query import pipeline_specs

REPO = Path(__file__).resolve().parents[1]

#: eps on a 0.1 lattice at the paper's T, dT, dV; T as explicit values.
POINT_SPEC = {"model": "single_level", "params": {"dT": 5.0, "dV": 5.0},
              "axes": {"eps": {"start": -40, "stop": 40, "num": 801}, "T": [5.0, 7.5]}}


@pytest.fixture(autouse=True)
def _scratch_default_store(tmp_path, monkeypatch):
    monkeypatch.setenv("PHASEMAP_STORE", str(tmp_path / "default-store"))


@pytest.fixture
def runner():
    return CliRunner()


def write(data: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))  # axis order is part of the key
    return path


def invoke(runner, *args: str, code: int = 0):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result


def result_for(runner, spec: Path):
    return runner.invoke(app, ["compute", str(spec), "--dry-run"])


def points_computed(text: str) -> int:
    m = re.search(r"([\d,]+) points computed", text)
    assert m, text
    return int(m.group(1).replace(",", ""))


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.fixture
def computed(tmp_path, runner):
    """A computed point spec in its own store: (spec path, store path, dataset id)."""
    spec = write(POINT_SPEC, tmp_path / "point.yaml")
    store = tmp_path / "store"
    invoke(runner, "compute", spec, "--store", store)
    rid = phasemap.store.spec_id(GridSpec.from_dict(POINT_SPEC))
    return spec, store, rid


# --- compute ----------------------------------------------------------------------------

def test_dry_run_then_compute_twice(tmp_path, runner):
    spec = write(POINT_SPEC, tmp_path / "point.yaml")
    store = tmp_path / "store"
    dry = invoke(runner, "compute", spec, "--store", store, "--dry-run").stdout
    assert "801 x 2 = 1,602 points" in dry
    assert "MiB of outputs" in dry
    assert re.search(r"shards\s+\d+ of .*; 0 stored, \d+ missing", dry)
    assert "stored    0 of 1,602 requested points" in dry
    assert not (store / "requests").exists()  # a dry run writes nothing

    first = invoke(runner, "compute", spec, "--store", store).stdout
    assert points_computed(first) > 0
    second = invoke(runner, "compute", spec, "--store", store).stdout
    assert points_computed(second) == 0
    assert "1,602 reused" in second

    dry = invoke(runner, "compute", spec, "--store", store, "--dry-run").stdout
    assert ", 0 missing" in dry
    assert "stored    1,602 of 1,602 requested points" in dry
    assert "compute   0 points" in dry


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200")
    env.pop("PHASEMAP_STORE", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "phasemap.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_compute_again_as_a_real_process(tmp_path, runner, monkeypatch):
    spec = write(POINT_SPEC, tmp_path / "point.yaml")
    monkeypatch.chdir(tmp_path)
    first = invoke(runner, "compute", spec, "--store", "store")
    assert points_computed(first.stdout) > 0
    assert "shards" in first.stderr  # the progress bar goes to stderr
    t0 = time.perf_counter()
    second = _cli("compute", str(spec), "--store", "store", cwd=tmp_path)
    wall = time.perf_counter() - t0
    print(f"second `phasemap compute` as a process: {wall:.2f} s wall")
    assert second.returncode == 0, second.stderr
    assert points_computed(second.stdout) == 0
    assert "1,602 reused" in second.stdout
    assert "(cache hit)" in second.stdout  # answered without importing the numerics
    assert (tmp_path / "store" / "requests").is_dir()  # relative --store is the cwd's


def test_cache_hit_path_trusts_only_commit_records(tmp_path, runner):
    """The CLI's import-free cache hit falls back to the planner as soon as any shard the
    request needs has lost its commit record, and the planner then recomputes just that."""
    spec = write(POINT_SPEC, tmp_path / "point.yaml")
    store = tmp_path / "store"
    invoke(runner, "compute", spec, "--store", str(store))
    assert "(cache hit)" in invoke(runner, "compute", spec, "--store", str(store)).stdout
    commits = sorted((store / "families").glob("*/commits/*"))
    assert commits
    commits[0].unlink()
    again = invoke(runner, "compute", spec, "--store", str(store))
    assert "(cache hit)" not in again.stdout
    assert points_computed(again.stdout) > 0
    assert "(cache hit)" in invoke(runner, "compute", spec, "--store", str(store)).stdout
    # an edited spec file is a different request: never answered from the old record
    edited = write({**yaml.safe_load(spec.read_text()), "name": "edited"},
                   tmp_path / "point.yaml")
    assert "(cache hit)" not in invoke(runner, "compute", edited, "--store", str(store)).stdout


def test_bad_specs_exit_2_with_one_line_naming_the_parameter(tmp_path, runner):
    cases = {
        "foo": {"params": {"foo": 1.0}, "axes": {"eps": [0.0, 1.0]}},
        "dT": {"params": {"dT": 16.0}, "axes": {"eps": [0.0, 1.0], "T": [5.0, 7.5]}},
        "axes.T": {"axes": {"T": {"start": 5, "stop": 1, "num": 3}}},
        "gamma_L": {"params": {"gamma_L": -1.0}, "axes": {"eps": [0.0]}},
    }
    for name, data in cases.items():
        spec = write(data, tmp_path / f"bad-{name}.yaml")
        result = runner.invoke(app, ["compute", str(spec), "--store", str(tmp_path / "s")])
        assert result.exit_code == 2, (name, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), lines
        assert name in lines[0], lines[0]
    assert "T_R" in result_for(runner, tmp_path / "bad-dT.yaml").stderr  # says why
    assert not (tmp_path / "s" / "families").exists()

    missing = runner.invoke(app, ["compute", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "nope.yaml" in missing.stderr


# --- query ------------------------------------------------------------------------------

def test_query_a_point_prints_values_and_both_labels(computed, runner):
    spec, store, _ = computed
    text = invoke(runner, "query", spec, "--store", store,
                  "--at", "eps=-15,T=7.5,dT=5,dV=5").stdout
    assert "absolute_negative_mobility" in text and "heat_engine" in text
    for name in ("J_L", "Q_L", "Q_R", "P", "s", "p1"):
        assert re.search(rf"^\s*{name}\s+-?\d", text, re.M), name

    record = json.loads(invoke(runner, "query", spec, "--store", store, "--json",
                               "--at", "eps=-15,T=7.5,dT=5,dV=5").stdout)
    assert record["regime"] == "absolute_negative_mobility"
    assert record["machine"] == "heat_engine"
    ref = phasemap.evaluate(eps=-15.0, T=7.5, dT=5.0, dV=5.0)
    for name in ("J_L", "Q_L", "Q_R", "P", "s", "p1"):
        assert record[name] == float(ref[name]), name


def test_query_off_grid_needs_interp(computed, runner):
    spec, store, _ = computed
    result = runner.invoke(app, ["query", str(spec), "--store", str(store),
                                 "--at", "eps=-15.05,T=7.5,dT=5,dV=5"])
    assert result.exit_code == 2
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and "eps=-15.05" in lines[0] and "--interp" in lines[0], lines
    assert result.stdout == ""

    record = json.loads(invoke(runner, "query", str(spec), "--store", str(store), "--json",
                               "--interp", "--at", "eps=-15.05,T=7.5,dT=5,dV=5").stdout)
    lo = phasemap.evaluate(eps=-15.1, T=7.5, dT=5.0, dV=5.0)
    hi = phasemap.evaluate(eps=-15.0, T=7.5, dT=5.0, dV=5.0)
    assert record["eps"] == -15.05
    assert np.isclose(record["J_L"], (float(lo.J_L) + float(hi.J_L)) / 2, rtol=1e-12)
    assert record["regime"] == "absolute_negative_mobility"

    # outside the grid and unknown names are one-line errors naming the parameter too
    for at, name in (("eps=-50,T=7.5", "eps"), ("eps=-15,T=7.5,foo=1", "foo")):
        result = runner.invoke(app, ["query", str(spec), "--store", str(store), "--at", at])
        assert result.exit_code == 2
        lines = error_lines(result.stderr)
        assert len(lines) == 1 and lines[0].startswith(f"error: {name}="), lines


def test_query_slice_to_netcdf_and_csv(computed, runner, tmp_path):
    spec, store, _ = computed
    nc = tmp_path / "slice.nc"
    invoke(runner, "query", spec, "--store", store, "--slice", "T=7.5", "--out", nc)
    with xr.open_dataset(nc) as ds:
        ref = phasemap.evaluate(eps=ds.eps.values, T=7.5, dT=5.0, dV=5.0)
        assert ds.J_L.dims == ("eps",) and ds.sizes["eps"] == 801
        np.testing.assert_array_equal(ds.J_L.values, ref.J_L.values)
        np.testing.assert_array_equal(ds.regime.values, ref.regime.values)
        assert ds.J_L.attrs["units"] == "gamma0" and ds.J_L.attrs["long_name"]
        assert ds.eps.attrs["units"] == "E0"
        assert ds.regime.attrs["flag_meanings"].split() == list(phasemap.REGIME_LABELS)
        assert list(ds.machine.attrs["flag_values"]) == list(range(len(
            phasemap.MACHINE_LABELS)))
        assert float(ds.T) == 7.5 and ds.attrs["dataset_id"]

    cut = tmp_path / "cut.nc"  # the command of issue 11
    invoke(runner, "query", spec, "--store", store, "--slice", "eps=-10", "--out", cut)
    with xr.open_dataset(cut) as ds:
        assert ds.J_L.dims == ("T",) and list(ds["T"].values) == [5.0, 7.5]
        ref = phasemap.evaluate(eps=-10.0, T=ds["T"].values, dT=5.0, dV=5.0)
        for name in ("J_L", "Q_L", "Q_R", "P", "s", "regime", "machine"):
            np.testing.assert_array_equal(ds[name].values, ref[name].values, err_msg=name)
        assert float(ds.eps) == -10.0

    csv = tmp_path / "slice.csv"
    invoke(runner, "query", spec, "--store", store, "--slice", "T=7.5", "--out", csv)
    import pandas as pd

    frame = pd.read_csv(csv)
    assert len(frame) == 801
    assert {"eps", "J_L", "regime", "regime_label", "machine_label"} <= set(frame.columns)
    row = frame.loc[np.isclose(frame.eps, -15.0)].iloc[0]
    assert row.regime_label == "absolute_negative_mobility"
    assert row.machine_label == "heat_engine"

    bad = runner.invoke(app, ["query", str(spec), "--store", str(store), "--slice", "T=7.5",
                              "--out", str(tmp_path / "slice.txt")])
    assert bad.exit_code == 2 and "--out" in bad.stderr


def test_query_summary(computed, runner):
    spec, store, rid = computed
    text = invoke(runner, "query", spec, "--store", store, "--summary").stdout
    for label in phasemap.REGIME_LABELS:
        assert label in text
    fractions = json.loads(invoke(runner, "query", rid, "--store", store, "--summary",
                                  "--json", "--lens", "machine").stdout)
    assert set(fractions) == set(phasemap.MACHINE_LABELS)
    assert abs(sum(fractions.values()) - 1.0) < 1e-12
    # a store directory holding one dataset works as the target too
    assert json.loads(invoke(runner, "query", store, "--summary", "--json").stdout)


def test_query_errors_speak_the_clis_words(computed, runner):
    spec, store, _ = computed
    cases = {
        "eps=-15": ("--at", "missing T"),                       # a dimension left out
        "eps=-15,T=7.5,dT=4,dV=5": ("dT=4", "fixed at 5"),      # dT is fixed in the dataset
        "eps=-15.05,T=7.5": ("eps=-15.05", "--interp"),
    }
    for at, (start, says) in cases.items():
        result = runner.invoke(app, ["query", str(spec), "--store", str(store), "--at", at])
        assert result.exit_code == 2, (at, result.stdout)
        lines = error_lines(result.stderr)
        assert len(lines) == 1 and lines[0].startswith(f"error: {start}"), lines
        assert says in lines[0], lines


def test_query_of_a_stored_spec_prints_no_progress(computed, runner):
    spec, store, _ = computed
    result = invoke(runner, "query", spec, "--store", store, "--json",
                    "--at", "eps=-15,T=7.5")
    assert json.loads(result.stdout)["regime"] == "absolute_negative_mobility"
    assert result.stderr == ""  # nothing computed: no "compute ... cached" bar


def test_version(runner):
    result = invoke(runner, "--version")
    assert result.stdout.strip() == f"phasemap {phasemap.__version__}"


@pytest.mark.parametrize(("name", "content", "where", "says"), [
    ("broken.yaml", b"model: single_level\naxes:\n  eps: [1, 2\n  T: 7.5\n",
     ":4:", "valid YAML"),
    ("tabs.yaml", b"axes:\n\teps: [1, 2]\n", ":2:1", "valid YAML"),
    ("broken.json", b'{"axes": {"eps": [1, 2,]}}', ":1:", "valid JSON"),
    ("latin1.yaml", "axes: {eps: [1]}\nname: caf\u00e9\n".encode("latin-1"), ":2:10",
     "UTF-8"),
    ("list.yaml", b"- 1\n- 2\n", "list.yaml", "mapping"),
])
def test_unreadable_spec_files_give_one_line_and_exit_2(tmp_path, runner, name, content,
                                                        where, says):
    path = tmp_path / name
    path.write_bytes(content)
    for command in (["compute", str(path)], ["query", str(path), "--summary"]):
        result = runner.invoke(app, [*command, "--store", str(tmp_path / "s")])
        assert result.exit_code == 2, (command, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: spec="), lines
        assert str(path) in lines[0] and where in lines[0] and says in lines[0], lines


def test_pipeline_files_that_are_not_mappings(tmp_path, runner):
    for name, content, says in (("list.yaml", b"- a.yaml\n- b.yaml\n", "holds a list"),
                                ("bin.yaml", b"specs: [\xff]\n", "UTF-8"),
                                ("bad.yaml", b"specs: [a.yaml\n", ":2:")):
        path = tmp_path / name
        path.write_bytes(content)
        result = runner.invoke(app, ["run", str(path), "--store", str(tmp_path / "s")])
        assert result.exit_code == 2, (name, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: pipeline="), lines
        assert says in lines[0], lines


def test_broken_yaml_as_a_real_process(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("axes:\n  eps: {start: -1, stop: 1, num: 3\n")
    proc = subprocess.run([sys.executable, "-m", "phasemap.cli", "compute", str(path),
                           "--store", str(tmp_path / "s")], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "60"}, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{path}:3:1" in lines[0], lines
    version = subprocess.run([sys.executable, "-m", "phasemap.cli", "--version"],
                             capture_output=True, text=True, timeout=300)
    assert version.returncode == 0 and version.stdout.strip() == (
        f"phasemap {phasemap.__version__}")


# --- cache ------------------------------------------------------------------------------

def test_cache_commands(computed, runner):
    _, store, rid = computed
    ls = invoke(runner, "cache", "ls", "--store", store).stdout
    assert rid in ls and "eps:801" in ls

    info = json.loads(invoke(runner, "cache", "info", rid, "--store", store).stdout)
    assert info["id"] == rid and info["spec"] == GridSpec.from_dict(POINT_SPEC).to_dict()
    assert info["family_shards_committed"] >= 1 and info["points"] == 1602

    ok = invoke(runner, "cache", "verify", "--store", store).stdout
    assert ok.startswith("ok:")

    victim = sorted(p for p in store.glob("families/*/J_L/c/**/*") if p.is_file())[0]
    with victim.open("r+b") as f:
        f.truncate(victim.stat().st_size - 7)
    bad = invoke(runner, "cache", "verify", "--store", store, code=1).stdout
    shard = ".".join(victim.parts[-2:])
    assert f"shard {shard} J_L" in bad and "size" in bad and "cache repair" in bad
    fixed = invoke(runner, "cache", "repair", "--store", store).stdout
    assert "repaired family" in fixed and "1 damaged shard object(s) recomputed" in fixed
    invoke(runner, "cache", "verify", "--store", store)

    invoke(runner, "cache", "rm", rid, "--store", store)
    assert rid not in invoke(runner, "cache", "ls", "--store", store).stdout
    assert list(store.glob("families/*/J_L/c/**/*"))  # data stays until gc
    gc = invoke(runner, "cache", "gc", "--store", store, "--grace", "0").stdout
    assert "removed 1 unreferenced famil" in gc
    assert not [p for p in store.glob("families/*/J_L/c/**/*") if p.is_file()]

    unknown = runner.invoke(app, ["cache", "info", "0123456789abcdef", "--store", str(store)])
    assert unknown.exit_code == 2 and len(error_lines(unknown.stderr)) == 1


def test_cache_ls_piped_keeps_whole_names(tmp_path, runner):
    name = "maps_eps_dV_at_T_7.5_dT_5_with_a_long_descriptive_name_" + "x" * 60
    spec = write({**POINT_SPEC, "name": name}, tmp_path / "named.yaml")
    store = tmp_path / "store"
    invoke(runner, "compute", spec, "--store", store)
    lines = invoke(runner, "cache", "ls", "--store", store).stdout.splitlines()
    assert lines[0].split("\t") == ["id", "name", "model", "shape", "fixed", "points",
                                     "created"]
    fields = lines[1].split("\t")
    assert fields[1] == name and fields[3] == "eps:801 x T:2" and fields[5] == "1,602"


# --- pipelines --------------------------------------------------------------------------

def test_run_pipeline(tmp_path, runner):
    specs = tmp_path / "specs"
    specs.mkdir()
    write(POINT_SPEC, specs / "a.yaml")
    write({**POINT_SPEC, "axes": {"eps": {"start": -20, "stop": 20, "num": 401},
                                  "T": [10.0]}}, specs / "b.yaml")
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text("specs:\n  - specs/*.yaml\n")
    store = tmp_path / "store"
    text = invoke(runner, "run", pipeline, "--store", store).stdout
    assert re.search(r"a\.yaml: dataset \w+, [\d,]+ computed", text)
    assert re.search(r"b\.yaml: dataset \w+, [\d,]+ computed", text)
    again = invoke(runner, "run", pipeline, "--store", store).stdout
    assert again.count(" 0 computed") == 2

    empty = tmp_path / "empty.yaml"
    empty.write_text("specs:\n  - nothing/*.yaml\n")
    result = runner.invoke(app, ["run", str(empty), "--store", str(store)])
    assert result.exit_code == 2 and "nothing/*.yaml" in result.stderr

    # one bad spec stops the pipeline before anything is computed
    write({"params": {"dT": 40.0}, "axes": {"eps": [0.0]}}, specs / "c.yaml")
    result = runner.invoke(app, ["run", str(pipeline), "--store", str(tmp_path / "fresh")])
    assert result.exit_code == 2 and "dT" in result.stderr
    assert not (tmp_path / "fresh" / "requests").exists()


def test_shipped_pipelines_are_valid():
    survey = GridSpec.load(REPO / "pipelines" / "survey.yaml")
    assert survey.dims == ("eps", "T", "dT", "dV")
    assert survey.size >= 10**8  # and GridSpec validated T_R > 0 over the whole grid
    specs = pipeline_specs(REPO / "pipelines" / "paper.yaml")
    assert specs, "pipelines/paper.yaml matches no spec"
    for path in specs:
        assert path.parent == REPO / "pipelines" / "paper"
        GridSpec.load(path)


def test_survey_dry_run(tmp_path, runner):
    text = invoke(runner, "compute", REPO / "pipelines" / "survey.yaml", "--store",
                  tmp_path / "store", "--dry-run").stdout
    assert "800 x 64 x 32 x 64 = 104,857,600 points" in text
    assert not (tmp_path / "store" / "requests").exists()


def test_validator_phrasing_is_restated(tmp_path, runner):
    spec = write({"axes": {"eps": {"start": 0, "stop": 1, "num": 0}}}, tmp_path / "zero.yaml")
    result = runner.invoke(app, ["compute", str(spec), "--store", str(tmp_path / "s")])
    assert result.exit_code == 2
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and "greater than or equal to 1" in lines[0], lines
    assert "Input should" not in lines[0]
