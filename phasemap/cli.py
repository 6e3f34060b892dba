"""The ``phasemap`` command line: a thin adapter over the public Python API.

Every command parses its options, calls :mod:`phasemap` and formats the answer. Errors a user
can fix print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column, Table

from . import query as q
from .errors import ParameterError, PhasemapError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Transport phase maps of quantum-dot thermoelectric devices.")
cache_app = typer.Typer(no_args_is_help=True, help="Inspect and maintain the store.")
app.add_typer(cache_app, name="cache")


def _version(value: bool) -> None:
    if value:
        from . import __version__

        out.print(f"phasemap {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True,
        help="Print the version and exit.")] = False) -> None:
    """Transport phase maps of quantum-dot thermoelectric devices."""

out = Console(highlight=False, soft_wrap=True)  # one result per line, never wrapped
err = Console(stderr=True, highlight=False)

StoreOpt = Annotated[str | None, typer.Option("--store", help="Store path or fsspec URL "
                                              "(default $PHASEMAP_STORE or data/store).")]
SchedulerOpt = Annotated[str | None, typer.Option(
    "--scheduler", help="Existing dask scheduler: tcp://host:port or a scheduler file.")]
ClusterOpt = Annotated[str | None, typer.Option(
    "--cluster", help="Start a job-queue cluster: slurm or pbs "
                      "(config from pipelines/cluster/<name>.yaml).")]
ClusterConfigOpt = Annotated[str | None, typer.Option(
    "--cluster-config", help="YAML of dask-jobqueue arguments (overrides the default).")]
JobsOpt = Annotated[int | None, typer.Option("--jobs", help="Number of job-queue jobs.")]


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


#: The library's names of things a user gives, in the CLI's words (its options).
OPTION_NAMES = {"at": "--at", "slice": "--slice", "out": "--out", "dataset": "--dataset",
                "interp": "--interp"}


def cli_words(exc: PhasemapError) -> str:
    """One line for a phasemap error, in the command line's words: the point's missing
    dimensions are an ``--at`` problem, a value between grid points suggests ``--interp``,
    a validator's phrasing is restated."""
    if not isinstance(exc, ParameterError):
        return str(exc)
    if isinstance(exc, q.MissingCoordinates):
        return str(ParameterError("--at", exc.value, exc.allowed))
    exc = q.plain_words(exc)
    allowed = exc.allowed
    if isinstance(exc, q.OffGrid):
        allowed += "; use --interp to interpolate"
    return str(ParameterError(OPTION_NAMES.get(exc.param, exc.param), exc.value, allowed,
                              exc.detail))


def handle_errors(fn):
    """Turn phasemap errors (and a few obvious user errors) into one line and exit 2."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PhasemapError as exc:
            _fail(cli_words(exc))
        except FileNotFoundError as exc:
            _fail(f"{exc.filename or exc}: no such file")
        except KeyboardInterrupt:
            _fail("interrupted; committed shards are kept, rerun to resume", code=130)
    return wrapper


def _store(url: str | None):
    from .store import Store

    return Store(url)


def _progress_bar(label: str):
    return Progress(TextColumn(f"[bold]{label}[/]"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("shards"), TaskProgressColumn(),
                    TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                    TextColumn("ETA"), TimeRemainingColumn(), console=err,
                    transient=False, disable=not err.is_terminal and False)


def compute_with_progress(spec, store, client=None, label: str = "compute"):
    """``phasemap.compute`` with a rich progress bar (shards, rate, ETA) on stderr; no bar
    when every shard the spec needs is already stored (nothing is computed)."""
    from .store import compute, plan

    if isinstance(spec, str | Path):
        spec = q.load_spec(spec)
    if not plan(spec, store).missing:
        return compute(spec, store=store, client=client)
    with _progress_bar(label) as bar:
        task = bar.add_task(label, total=None, rate="")
        t0 = time.perf_counter()

        def progress(done: int, total: int, points: int) -> None:
            dt = max(time.perf_counter() - t0, 1e-9)
            bar.update(task, completed=done, total=total,
                       rate=f"{points / dt / 1e6:,.1f} Mpts/s" if points else "cached")

        return compute(spec, store=store, client=client, progress=progress)


def _parse_assignments(text: str, option: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, raw = part.partition("=")
        if not sep:
            raise ParameterError(option, part, "name=value pairs separated by commas, "
                                               "e.g. eps=-15,T=7.5")
        try:
            values[name.strip()] = float(raw)
        except ValueError:
            raise ParameterError(name.strip(), raw, "a number") from None
    return values


# --- compute / run ----------------------------------------------------------------------

@app.command()
@handle_errors
def compute(spec: Annotated[Path, typer.Argument(help="Grid spec (.yaml or .json).")],
            store: StoreOpt = None, scheduler: SchedulerOpt = None, cluster: ClusterOpt = None,
            cluster_config: ClusterConfigOpt = None, jobs: JobsOpt = None,
            dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be "
                                                  "computed.")] = False) -> None:
    """Compute a grid into the store (only what is missing) and report what was done."""
    if not dry_run:
        hit = _cached_answer(spec, store)
        if hit is not None:
            out.print(f"dataset {hit['id']}: 0 points computed, {hit['points']:,} reused, "
                      f"in {hit['store']} (cache hit)")
            return

    from .cluster import get_client
    from .store import plan

    grid = q.load_spec(spec)
    st = _store(store)
    if dry_run:
        p = plan(grid, st).summary()
        out.print(f"grid      {' x '.join(map(str, grid.shape))} = {p['points']:,} points "
                  f"({p['bytes'] / 2**20:,.1f} MiB of outputs)")
        out.print(f"shards    {p['shards']:,} of {' x '.join(map(str, p['shard_shape']))}; "
                  f"{p['shards'] - p['shards_missing']:,} stored, {p['shards_missing']:,} missing")
        out.print(f"stored    {p['points_stored']:,} of {p['points']:,} requested points")
        out.print(f"compute   {p['points_to_compute']:,} points")
        out.print(f"family    {p['family']} in {st.url}")
        return
    with get_client(scheduler, cluster, cluster_config, jobs) as client:
        ds = compute_with_progress(grid, st, client)
    if st.local:
        st.write_blob(f"sources/{_source_key(spec)}.json",
                      json.dumps({"dataset_id": ds.attrs["dataset_id"],
                                  "spec_file": str(spec)}).encode())
    out.print(f"dataset {ds.attrs['dataset_id']}: {int(ds.attrs['points_computed']):,} points "
              f"computed, {int(ds.attrs['points_reused']):,} reused, in {st.url}")


def _source_key(spec: Path) -> str:
    """Content address of a spec file's bytes under this phasemap version."""
    from . import __version__

    digest = hashlib.sha256(f"phasemap {__version__}\0".encode() + Path(spec).read_bytes())
    return digest.hexdigest()[:24]


def _cached_answer(spec: Path, store: str | None) -> dict[str, Any] | None:
    """The request this exact spec file made before, if every shard it needs is still
    committed in the (local) store; ``None`` otherwise.

    This is what lets a repeated ``phasemap compute`` answer without importing xarray, dask,
    zarr or numba: it reads three small files and checks the commit records, the same test
    the planner applies. Any doubt (another store kind, a missing or unreadable record, a
    different phasemap version) falls back to the full path.
    """
    from ._paths import default_store_url

    url = store or default_store_url()
    if "://" in url and not url.startswith("file://"):
        return None
    root = Path(url.removeprefix("file://")).resolve()
    try:
        source = json.loads((root / "sources" / f"{_source_key(spec)}.json").read_text())
        rid = source["dataset_id"]
        record = json.loads((root / "requests" / f"{rid}.json").read_text())
        shards = (root / "requests" / f"{rid}.shards").read_text().split()
        commits = root / "families" / record["family"] / "commits"
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not all((commits / name).is_file() for name in shards):
        return None
    return {"id": rid, "points": int(record["points"]), "store": str(root)}


@app.command()
@handle_errors
def run(pipeline: Annotated[Path, typer.Argument(help="Pipeline YAML listing grid specs.")],
        store: StoreOpt = None, scheduler: SchedulerOpt = None, cluster: ClusterOpt = None,
        cluster_config: ClusterConfigOpt = None, jobs: JobsOpt = None) -> None:
    """Compute every grid of a pipeline into the store."""
    from .cluster import get_client

    specs = q.pipeline_specs(pipeline)
    grids = [q.load_spec(p) for p in specs]  # validate all before computing any
    st = _store(store)
    with get_client(scheduler, cluster, cluster_config, jobs) as client:
        for path, grid in zip(specs, grids, strict=True):
            ds = compute_with_progress(grid, st, client, label=grid.name or path.stem)
            out.print(f"{path.name}: dataset {ds.attrs['dataset_id']}, "
                      f"{int(ds.attrs['points_computed']):,} computed, "
                      f"{int(ds.attrs['points_reused']):,} reused")


# --- query ------------------------------------------------------------------------------

def _open_target(target: str, store: str | None, dataset: str | None):
    """A dataset from a spec file, a dataset id, or a store holding a single dataset."""
    from .store import Store

    path = Path(target)
    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        return compute_with_progress(path, _store(store))
    if path.is_dir() and (path / "requests").is_dir():
        st = Store(str(path))
        if dataset is None:
            ids = [r["id"] for r in st.requests()]
            if len(ids) != 1:
                raise ParameterError("--dataset", None,
                                     f"one of the {len(ids)} dataset ids in {path}: "
                                     f"{', '.join(ids[:10])}")
            dataset = ids[0]
        return st.open(dataset)
    return _store(store).open(target)


@app.command()
@handle_errors
def query(target: Annotated[str, typer.Argument(
              metavar="STORE-OR-SPEC", help="A spec file, a store directory or a dataset id.")],
          at: Annotated[str | None, typer.Option("--at", help="A point: eps=-15,T=7.5,...")]
          = None,
          interp: Annotated[bool, typer.Option("--interp", help="Interpolate between grid "
                                               "points.")] = False,
          slice_: Annotated[str | None, typer.Option("--slice", help="Fix some dims: "
                                                     "T=7.5,dT=5")] = None,
          out_file: Annotated[Path | None, typer.Option("--out", help="Slice output: "
                                                        "FILE.nc or FILE.csv")] = None,
          summary: Annotated[bool, typer.Option("--summary", help="Regime fractions.")]
          = False,
          lens: Annotated[str, typer.Option("--lens", help="regime or machine")] = "regime",
          dataset: Annotated[str | None, typer.Option("--dataset", help="Dataset id inside "
                                                      "a store directory.")] = None,
          store: StoreOpt = None,
          as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Query a stored dataset: a point, a slice to a file, or regime fractions."""
    if sum(x is not None and x is not False for x in (at, slice_, summary or None)) != 1:
        raise ParameterError("query", target, "exactly one of --at, --slice or --summary")
    ds = _open_target(target, store, dataset)
    if at is not None:
        record = q.point_record(ds, _parse_assignments(at, "--at"), interp)
        if as_json:
            out.print(json.dumps(record))
            return
        table = Table(show_header=False, box=None)
        for k, v in record.items():
            table.add_row(k, f"{v:.12g}" if isinstance(v, float) else str(v))
        out.print(table)
    elif slice_ is not None:
        if out_file is None:
            raise ParameterError("--out", None, "an output file FILE.nc or FILE.csv for "
                                                "--slice")
        sub = q.select_slice(ds, _parse_assignments(slice_, "--slice"))
        q.write_slice(sub, out_file)
        out.print(f"wrote {out_file} ({sub.J_L.size:,} points, dims "
                  f"{', '.join(map(str, sub.dims)) or 'none'})")
    else:
        fr = ds.phasemap.fractions(lens)
        if as_json:
            out.print(json.dumps({k: float(v) for k, v in fr.items()}))
            return
        table = Table("label", "fraction")
        for k, v in fr.items():
            table.add_row(k, f"{v:.4%}")
        out.print(table)


# --- cache ------------------------------------------------------------------------------

@cache_app.command("ls")
@handle_errors
def cache_ls(store: StoreOpt = None) -> None:
    """List the datasets in the store."""
    st = _store(store)
    problems: list[str] = []

    def fixed(spec: dict) -> str:
        return ", ".join(f"{k}={v:g}" if isinstance(v, int | float) else f"{k}={v}"
                         for k, v in (spec.get("params") or {}).items())

    rows = [(r["id"], r["spec"].get("name") or "", r["spec"].get("model", ""),
             " x ".join(f"{d}:{n}" for d, n in zip(r["dims"], r["shape"], strict=True)),
             fixed(r["spec"]), f"{r['points']:,}", r.get("created", ""))
            for r in sorted(st.requests(problems=problems), key=lambda r: r.get("created", ""))]
    header = ("id", "name", "model", "shape", "fixed", "points", "created")
    if not out.is_terminal:  # piped: whole fields, tab-separated, one dataset a line
        for row in (header, *rows):
            typer.echo("\t".join(" ".join(str(f).split()) for f in row))
        for problem in problems:  # a damaged record is reported, the rest still listed
            err.print(f"DAMAGED {problem}", soft_wrap=True)
        return
    table = Table(Column("id", no_wrap=True, min_width=16), *header[1:],
                  title=st.url)  # ids are never shortened: users copy them
    for row in rows:
        table.add_row(*row)
    out.print(table)
    for problem in problems:  # a damaged record is reported, the rest still listed
        out.print(f"DAMAGED {problem}", soft_wrap=True)


@cache_app.command("info")
@handle_errors
def cache_info(dataset: Annotated[str, typer.Argument(help="Dataset id.")],
               store: StoreOpt = None) -> None:
    """Show a dataset's spec, family and provenance."""
    st = _store(store)
    record = st.request(dataset)
    fam = st.family_by_key(record["family"])
    record["family_shards_committed"] = len(fam.committed())
    record["family_definition"] = fam.layout.definition()
    out.print_json(json.dumps(record))


@cache_app.command("verify")
@handle_errors
def cache_verify(store: StoreOpt = None) -> None:
    """Check every committed shard (presence, size, checksums); exit 1 if any is bad."""
    st = _store(store)
    bad = st.verify()
    for r in bad:
        out.print(f"BAD family {r.family or '-'} {r.where} {r.variable}: {r.problem}",
                  soft_wrap=True)
    if bad:
        out.print(f"{len(bad)} problem(s); run 'phasemap cache repair'")
        raise typer.Exit(1)
    out.print(f"ok: every committed shard in {st.url} verified")


@cache_app.command("repair")
@handle_errors
def cache_repair(store: StoreOpt = None, scheduler: SchedulerOpt = None) -> None:
    """Recompute every shard that verify reports as damaged."""
    from .cluster import get_client

    st = _store(store)
    with get_client(scheduler) as client:
        fixed = st.repair(client=client)
    for r in fixed:
        out.print(f"repaired family {r.family or '-'} {r.where} ({r.variable}: {r.problem})",
                  soft_wrap=True)
    left = st.verify()
    for r in left:
        out.print(f"NOT REPAIRED family {r.family or '-'} {r.where} {r.variable}: "
                  f"{r.problem}", soft_wrap=True)
    out.print(f"{len(fixed)} damaged shard object(s) recomputed")
    if left:
        out.print(f"{len(left)} problem(s) left")
        raise typer.Exit(1)


@cache_app.command("rm")
@handle_errors
def cache_rm(dataset: Annotated[str, typer.Argument(help="Dataset id.")],
             store: StoreOpt = None) -> None:
    """Forget a dataset (its data goes at the next gc unless another dataset shares it)."""
    _store(store).remove_request(dataset)
    out.print(f"removed dataset {dataset}")


@cache_app.command("gc")
@handle_errors
def cache_gc(store: StoreOpt = None,
             grace: Annotated[float, typer.Option(
                 "--grace", help="Keep temporary files younger than this many seconds (a "
                                 "running compute's families are kept by its lease).")]
             = 3600.0) -> None:
    """Delete data no dataset refers to and no running compute holds, and leftovers."""
    if not grace >= 0:
        raise ParameterError("--grace", grace, "a number of seconds >= 0")
    res = _store(store).gc(grace_seconds=grace)
    out.print(f"removed {res['families_removed']} unreferenced famil(ies), "
              f"{res['temporaries_removed']} temporary file(s), "
              f"{res['leases_removed']} expired lease(s)")


# --- figures ----------------------------------------------------------------------------

@app.command()
@handle_errors
def figures(out_dir: Annotated[Path, typer.Option("--out", help="Output directory.")] =
            Path("figures"), store: StoreOpt = None,
            formats: Annotated[str, typer.Option(
                "--format", help="Comma-separated formats to write: png, svg, pdf (print "
                                 "versions) and html (interactive); 'all' for every one.")]
            = "png,svg,pdf,html") -> None:
    """Compute the paper's pipelines through the store and write Figs. 2-9 and extra maps."""
    from .plot.figures import parse_formats, write_figures

    try:
        wanted = parse_formats(formats)
    except ParameterError as exc:  # speak CLI: name the option, not the Python argument
        raise ParameterError("--format", exc.value, exc.allowed) from None
    # missing shards on dask's threaded scheduler in this process (phasemap.compute's default)
    paths = write_figures(out_dir, store=_store(store), formats=wanted,
                          progress=lambda m: err.print(m))
    out.print(f"wrote {len(paths)} files ({', '.join(wanted)}) to {out_dir}")


# --- serve ------------------------------------------------------------------------------

@app.command()
@handle_errors
def serve(store: StoreOpt = None,
          host: Annotated[str, typer.Option("--host", help="Address to listen on.")]
          = "127.0.0.1",
          port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
          token: Annotated[str | None, typer.Option(
              "--token", envvar="PHASEMAP_TOKEN", show_envvar=True,
              help="Require 'Authorization: Bearer TOKEN' to compute grids.")] = None,
          allowed_host: Annotated[list[str] | None, typer.Option(
              "--allowed-host", help="Another host name the server answers for (the "
                                     "listening address and loopback names always are; "
                                     "repeatable; also $PHASEMAP_ALLOWED_HOSTS).")] = None,
          allowed_origin: Annotated[list[str] | None, typer.Option(
              "--allowed-origin", help="Another host:port whose pages may open the explorer "
                                       "and send requests that change state (repeatable; "
                                       "also $PHASEMAP_ALLOWED_ORIGINS).")] = None,
          no_precompute: Annotated[bool, typer.Option(
              "--no-precompute", help="Serve the store as it is, without first computing "
                                      "the paper's datasets.")] = False) -> None:
    """Serve the phase-map explorer and the HTTP API (computing the paper's datasets first)."""
    from .service import ServiceConfig
    from .service import serve as run_service

    config = ServiceConfig(store=_store(store).url, host=host, port=port, token=token or None)
    config.allowed_hosts += list(allowed_host or [])
    config.websocket_origins += list(allowed_origin or [])

    def progress_compute(spec, st, client, label):
        return compute_with_progress(spec, st, client, label=label)

    run_service(config, precompute_paper=not no_precompute, compute=progress_compute,
                echo=err.print)


def main() -> None:  # console-script entry point
    try:
        app()
    except SystemExit:
        raise
    except Exception as exc:  # an unexpected failure: still one line, non-zero status
        err.print(f"[bold red]error:[/] {type(exc).__name__}: {exc}", soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
