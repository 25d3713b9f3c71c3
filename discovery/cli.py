"""The ``discover`` command line: a thin layer over the package's objects."""

from __future__ import annotations

import functools
import logging
import math
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from discovery.targets import PROPERTIES

app = typer.Typer(help="Screen inorganic composition space for new materials.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
data_app = typer.Typer(help="Fetch and inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
train_app = typer.Typer(help="Train models.", no_args_is_help=True)
app.add_typer(train_app, name="train")

console = Console(stderr=True)

_PROPERTY_HELP = ", ".join(f"{p} ({unit})" for p, unit in PROPERTIES.items())


def _parse_count(value: str) -> int:
    """A positive sample count: an integer or integer-valued scientific notation (1e6)."""
    from discovery.errors import ConfigError

    text = str(value).strip().replace("_", "")
    try:
        number = int(text)
    except ValueError:
        try:
            x = float(text)
        except ValueError:
            raise ConfigError(f"--n must be a whole number such as 100000 or 1e6, got {value!r}") from None
        if not math.isfinite(x) or x != int(x):
            raise ConfigError(f"--n must be a whole number of samples, got {value!r}") from None
        number = int(x)
    if number <= 0:
        raise ConfigError(f"--n must be a positive number of samples, got {value!r}")
    return number


def friendly_errors(fn):
    """Turn the package's own errors into one red line and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from discovery.errors import user_errors

        try:
            return fn(*args, **kwargs)
        except user_errors() as exc:
            from rich.markup import escape  # messages may hold brackets: 'discovery[structure]'

            console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapper


@app.callback()
def _main(verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Also show info logs and TensorFlow's start-up and tracing messages "
        "(by default the console shows the progress bar, warnings, the funnel and the tables).")] = False,
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not verbose:
        from discovery.runtime import quiet_tensorflow

        quiet_tensorflow()


@data_app.command("fetch")
@friendly_errors
def data_fetch(
    wheel: Annotated[Path | None, typer.Option(help="Use this crabnet wheel instead of "
                                               "downloading it.")] = None,
    force: Annotated[bool, typer.Option(help="Re-extract even if cached.")] = False,
) -> None:
    """Download the crabnet==2.0.8 wheel and cache its tables as Parquet."""
    from discovery.data import cache_dir, fetch_crabnet

    manifest = fetch_crabnet(wheel=wheel, force=force)
    table = Table(title=f"crabnet tables in {cache_dir() / 'crabnet'}"
                  + (" (already cached)" if manifest.get("cached") else ""))
    for col in ("table", "rows", "raw rows", "duplicates removed", "skipped"):
        table.add_column(col)
    for name, t in manifest["tables"].items():
        skipped = ", ".join(f"{k}: {v}" for k, v in t["skipped"].items()) or "-"
        table.add_row(name, str(t["rows"]), str(t["raw_rows"]), str(t["duplicates_removed"]),
                      skipped)
    Console().print(table)


@data_app.command("info")
@friendly_errors
def data_info() -> None:
    """Where the data lives and how many known compositions the novelty index holds."""
    from discovery.data import cache_dir, shared_data_dir
    from discovery.known import KnownMaterials

    out = Console()
    out.print(f"shared data: {shared_data_dir(required=False) or 'not found'}")
    out.print(f"cache: {cache_dir()}")
    known = KnownMaterials.default()
    out.print(f"known compositions (unique reduced): {len(known):,} "
              f"(shipped {known.origin['shipped']:,}, added by local data {known.origin['added_locally']:,})")
    for name, n in known.sources.items():
        out.print(f"  {name}: {n:,}")
    if known.skipped:
        out.print(f"  skipped rows: {known.skipped}")


@app.command("run")
@friendly_errors
def run_cmd(
    ctx: typer.Context,
    n: Annotated[str, typer.Option("--n", metavar="N",
                                   help="Compositions to sample: 100000, 1e6, 2.5e5.")] = "100000",
    target: Annotated[str, typer.Option(help=f"e.g. 'bandgap>1.5', '1<bandgap<3 and formation_energy<0'; "
                                        f"properties: {_PROPERTY_HELP}.")]
    = "bandgap>1.5",
    seed: int = 0,
    sort: Annotated[str | None, typer.Option(help="PROP, PROP:asc, PROP:desc (default: first target's).")]
    = None,
    out: Annotated[Path | None, typer.Option(help="CSV path (default: "
                                             "candidates/<target>_n<N>_seed<S>_<settings hash>.csv)")]
    = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a report at --out that another run wrote.")]
    = False,
    batch_size: Annotated[int, typer.Option(help="Generator batch (memory per chunk).")] = 8192,
    include: Annotated[str, typer.Option(help="Elements every candidate must contain, e.g. Li,O.")] = "",
    exclude: Annotated[str, typer.Option(help="Elements no candidate may contain, e.g. Pb,Cd,Hg.")] = "",
    max_elements: Annotated[int | None, typer.Option(help="At most this many elements.")] = None,
    oxidation_states: Annotated[str, typer.Option(help="SMACT set: smact14, icsd16, icsd24, pymatgen_sp.")]
    = "smact14",
    filter: Annotated[list[str] | None, typer.Option("--filter", help="package.module:function, repeatable.")]
    = None,
    kappa: Annotated[float, typer.Option(help="Score = mean -/+ kappa * std of the sort property.")] = 1.0,
    engine: Annotated[str, typer.Option(help="'local' or 'dask'.")] = "local",
    scheduler: Annotated[str | None, typer.Option(help="Dask scheduler address (--engine dask).")] = None,
    workers: Annotated[int | None, typer.Option(help="LocalCluster workers (--engine dask).")] = None,
    partition_size: Annotated[int, typer.Option(help="Samples per partition (seeded by seed and index).")]
    = 250_000,
    run_dir: Annotated[Path | None, typer.Option(help="Keep per-partition files and a manifest here.")]
    = None,
    resume: Annotated[Path | None, typer.Option(help="Continue the interrupted run in RUN_DIR.")] = None,
    plot: Annotated[bool, typer.Option(help="Write a PNG beside the CSV.")] = True,
    top: Annotated[int, typer.Option(help="Candidates shown in the console.")] = 20,
    generator: Annotated[str | None, typer.Option(help="Generator name (see `discover generators`; "
                                                  "default: the registry's default).")] = None,
    generator_dir: Annotated[Path | None, typer.Option(help="A generator of that kind saved by "
                                                       "`discover train KIND --out DIR`.")] = None,
    relax_top: Annotated[int, typer.Option(help="Then propose, relax (CHGNet) and re-score the structures "
                                           "of the top K candidates (`discover relax`; needs "
                                           "discovery[structure]).")] = 0,
) -> None:
    """Sample compositions, keep plausible new ones, predict properties, rank those meeting TARGET."""
    from discovery.errors import ConfigError
    from discovery.generation.registry import DEFAULT, entry, generator_version
    from discovery.pipeline import build_spec, load_filter

    if engine not in ("local", "dask"):
        raise ConfigError(f"unknown engine {engine!r}; use local or dask")
    if engine == "dask":
        from discovery.engines.dask import check_options

        check_options(scheduler, workers)
    elif scheduler is not None or workers is not None:
        raise ConfigError(f"--{'scheduler' if scheduler is not None else 'workers'} applies to --engine "
                          "dask only; add --engine dask or drop it")
    if relax_top:
        _check_relax(relax_top, "--relax-top")
    filters = [load_filter(spec) for spec in (filter or [])]
    name = generator or DEFAULT
    entry(name)  # an unknown generator fails here, naming the known ones
    gen_dir = None if generator_dir is None else str(Path(generator_dir).resolve())
    # every argument is checked before anything loads (the models take seconds)
    spec = build_spec(_parse_count(n), target, seed, filters, sort, include.split(","), exclude.split(","),
                      max_elements, oxidation_states, batch_size, kappa, partition_size, name,
                      generator_version(name, generator_dir), gen_dir)
    from discovery.outputs import ReportLock, check_destination, write_reports
    from discovery.report import console_tables, default_report_path

    directory = resume or run_dir
    if engine == "dask":
        directory = directory or default_report_path(spec.settings(), Path("runs")).with_suffix("")
    if directory is not None:  # a resume typo or another run's directory is refused before the models load
        from discovery.engines.store import check_run_dir

        check_run_dir(directory, spec, resume=resume is not None)
    path = out or default_report_path(spec.settings())
    lock = ReportLock(path)  # held until this command ends: a second run at --out refuses
    check_destination(path, spec.settings(), plot, overwrite, lock)  # before any sampling or model load
    ctx.call_on_close(lock.release)
    from discovery.errors import FilterError
    from discovery.pipeline import Pipeline

    pipe = Pipeline.default(seed=seed, generator=name, generator_dir=generator_dir)
    pipe.check_models(spec)
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        if engine == "dask":
            from discovery.engines.dask import DaskEngine

            result = DaskEngine(directory, scheduler, workers, resume=resume is not None,
                                progress=True).run(spec)
        else:
            from discovery.engines.local import LocalEngine

            result = LocalEngine(pipe, directory, resume=resume is not None, progress=True).run(spec)
    except KeyboardInterrupt:
        hint = f"; continue with --resume {directory}" if directory else " (no --run-dir: nothing kept)"
        console.print(f"[yellow]interrupted[/yellow]: completed partitions are kept{hint}", highlight=False,
                      soft_wrap=True)
        raise typer.Exit(code=130) from None
    except FilterError as exc:  # the run did not finish: say what was kept
        hint = (f"the completed partitions are kept: fix the filter, then --resume {directory}" if directory
                else "nothing was kept (--run-dir keeps completed partitions)")
        raise FilterError(f"{exc}; {hint}") from None
    models = {"generator": f"{pipe.sampler.name} {pipe.sampler.card.get('version', 'unknown')}",
              **{p: m.card.get("version", "unknown") for p, m in pipe.models.items()}}
    extra = {"known_index": pipe.known.describe(),
             # draws the generator replaced because the index held them: `novel` never saw these
             "generator_skipped_known": result.generator_skipped,
             "known_phases": (pipe.hulls.sources | {"phases_used": len(pipe.hulls)}) if pipe.hulls
             else None}
    written, warnings = write_reports(result, path, models, plot, fallback_dirs=[directory], extra=extra)
    for warning in warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False, soft_wrap=True)
    out_console = Console()
    for table in console_tables(result, top):
        out_console.print(table)
    out_console.print("wrote " + " and ".join(map(str, written)))
    if relax_top:
        if written[0].suffix != ".csv":
            from discovery.errors import OutputError

            raise OutputError(f"the report was saved as {written[0]}: relax it with `discover relax` once "
                              "it is a plain CSV")
        from discovery.structure.settings import RelaxSettings

        _relax_report(written[0], relax_top, RelaxSettings(seed=seed), None, engine, scheduler, workers)


def _check_relax(top: int, option: str) -> None:
    """A one-line ConfigError for a bad count, or when the structure extra is missing."""
    from discovery.errors import ConfigError
    from discovery.structure import require_extra

    if top < 1:
        raise ConfigError(f"{option} must be a whole number >= 1, got {top}")
    require_extra(option)


def _relax_report(report: Path, top: int, settings, out: Path | None, engine: str, scheduler: str | None,
                  workers: int | None) -> None:
    """Run the structure stage on a report and show what it found."""
    from discovery.structure.stage import COLUMNS, attach

    path, result = attach(report, top, settings, out, engine, scheduler, workers, progress=True)
    potentials = "CHGNet" if settings.rerank == "none" else "CHGNet, SevenNet-0 re-ranking"
    table = Table(title=f"relaxed structures of the top {len(result.records)} ({potentials})")
    for col in ("formula", "prototype", "spacegroup", "e_hull_relaxed", "converged", "note"):
        table.add_column(col, overflow="fold")
    for r in result.records:
        eh = r.get("e_hull_relaxed")
        table.add_row(r["formula"], r.get("prototype") or "-", r.get("spacegroup") or "-",
                      "-" if eh is None else f"{eh:.3f}", str(r.get("relax_converged") or "-"),
                      r.get("relax_note") or "")
    out_console = Console()
    out_console.print(table)
    info = result.summary(settings)
    mean = info["seconds"]["per_candidate_mean"]
    out_console.print(f"{info['relaxed_now']} relaxed now, {info['resumed']} kept from before; "
                      f"{'-' if mean is None else f'{mean:.1f}'} s per candidate; "
                      f"{len(COLUMNS)} structure columns in {path}, CIFs in {result.directory}",
                      highlight=False, soft_wrap=True, markup=False)


@app.command("relax")
@friendly_errors
def relax_cmd(
    candidates: Annotated[Path, typer.Argument(help="A `discover run` report CSV (ranked).")],
    top: Annotated[int, typer.Option(help="Relax the first K rows.")] = 20,
    out: Annotated[Path | None, typer.Option(help="Report CSV to write (default: CANDIDATES, in place); "
                                             "CIFs go to <stem>_structures/ beside it.")] = None,
    engine: Annotated[str, typer.Option(help="'local' or 'dask' (one task per candidate).")] = "local",
    scheduler: Annotated[str | None, typer.Option(help="Dask scheduler address (--engine dask).")] = None,
    workers: Annotated[int | None, typer.Option(help="LocalCluster workers (--engine dask).")] = None,
    max_prototypes: Annotated[int, typer.Option(help="Templates relaxed fully per candidate.")] = 6,
    prescreen: Annotated[int, typer.Option(help="Template assignments given a short relaxation first; the "
                                           "--max-prototypes lowest go on (0: the likeliest, unscreened).")
                         ] = 24,
    prescreen_steps: Annotated[int, typer.Option(help="Optimizer steps of a prescreen relaxation.")] = 30,
    random_budget: Annotated[int, typer.Option(help="pyxtal random structures relaxed in full where no "
                                               "template fits (the lowest of --prescreen prescreened).")]
    = 4,
    random_prior: Annotated[str, typer.Option(help="Random structures' space groups and Wyckoff sites: "
                                              "'mp-wyckoff' (the likeliest of Materials Project's that "
                                              "fit) or 'uniform' (any group).")] = "mp-wyckoff",
    rerank: Annotated[str, typer.Option(help="Potential that re-relaxes CHGNet's --rerank-top lowest "
                                        "structures and picks the lowest: 'sevennet' (SevenNet-0) or "
                                        "'none' (CHGNet's lowest). Energies reported stay CHGNet's.")
                      ] = "sevennet",
    rerank_top: Annotated[int, typer.Option(help="Structures re-relaxed by --rerank.")] = 3,
    rerank_tie: Annotated[str, typer.Option(help="Among structures --rerank puts within 5 meV/atom of "
                                            "its pick: 'mean' (keep one the mean of the two "
                                            "potentials puts >5 meV/atom lower) or 'likelier' "
                                            "(its pick stands).")] = "mean",
    derivatives: Annotated[int, typer.Option(help="Ordered derivatives of templates (two elements sharing "
                                             "one template element's sites) added to the prescreen; "
                                             "beside templates they take at most half the places "
                                             "relaxed in full; 0: none.")] = 24,
    max_steps: Annotated[int, typer.Option(help="Optimizer step cap per relaxation.")] = 300,
    max_atoms: Annotated[int, typer.Option(help="Largest cell relaxed.")] = 24,
    seed: int = 0,
) -> None:
    """Propose, relax (CHGNet, SevenNet-0 picks among the lowest) and re-score the structures of a
    report's top candidates."""
    from discovery.errors import ConfigError
    from discovery.outputs import ReportLock
    from discovery.structure.settings import RelaxSettings

    settings = RelaxSettings(max_prototypes=max_prototypes, random_budget=random_budget, max_steps=max_steps,
                             max_atoms=max_atoms, seed=seed, prescreen=prescreen,
                             prescreen_steps=prescreen_steps, random_prior=random_prior,
                             rerank=rerank, rerank_top=rerank_top, rerank_tie=rerank_tie,
                             derivatives=derivatives)
    if engine not in ("local", "dask"):
        raise ConfigError(f"unknown engine {engine!r}; use local or dask")
    if engine == "dask":
        from discovery.engines.dask import check_options

        check_options(scheduler, workers)
    if not Path(candidates).is_file():
        raise ConfigError(f"no report at {candidates}")
    _check_relax(top, "--top")
    with ReportLock(out or candidates):
        _relax_report(candidates, top, settings, out, engine, scheduler, workers)


@app.command("evaluate")
@friendly_errors
def evaluate_cmd(
    datasets: Annotated[str, typer.Option(help="Comma-separated: bandgap, tc, formation_energy.")]
    = "bandgap,tc,formation_energy",
    seeds: Annotated[int, typer.Option(min=1, help="Model seeds per MP / SuperCon cell.")] = 10,
    oqmd_seeds: Annotated[int, typer.Option(min=1, help="Model seeds per OQMD cell.")] = 3,
    embedding: Annotated[Path | None, typer.Option(help="T.npy (default: the shipped GAN's).")] = None,
    amounts: Annotated[str, typer.Option(help="'counts' (paper) or 'fractions'.")] = "counts",
    featurizers: str = "gan_embedding,magpie,onehot",
    out: Path = Path("pipelines/reports"),
    tsne: bool = True,
    resume: Annotated[bool, typer.Option(help="Keep and skip the cells already in table4_runs.csv.")]
    = False,
) -> None:
    """Reproduce the paper's Table 4 (featurizers x datasets x seeds) with a trees baseline."""
    from discovery.evaluation import evaluate

    evaluate(datasets.split(","), seeds, oqmd_seeds, embedding, amounts, out=out,
             featurizer_names=tuple(featurizers.split(",")), tsne=tsne, command="discover evaluate",
             resume=resume)
    Console().print((out / "table4.md").read_text())


def _sigterm_as_interrupt(signum, frame):
    raise KeyboardInterrupt


@train_app.command("gan")
@friendly_errors
def train_gan_cmd(
    run_dir: Annotated[Path, typer.Option(help="Checkpoints and log.csv go here.")] = Path("runs/gan"),
    iterations: Annotated[int, typer.Option(min=1)] = 10_000,
    generator: Annotated[str, typer.Option(help="'paper' (Table 3) or 'slim'.")] = "paper",
    loss: Annotated[str, typer.Option(help="'gp' (WGAN-GP, Adam 1e-4) or 'clip'.")] = "gp",
    n_critic: Annotated[int, typer.Option(min=1)] = 5,
    batch_size: Annotated[int, typer.Option(min=2)] = 256,
    seed: int = 0,
    resume: Annotated[bool, typer.Option(help="Continue from RUN_DIR/last.")] = False,
    paper_setting: Annotated[bool, typer.Option(help="Weight clipping + RMSProp lr 1e-2.")] = False,
    threads: Annotated[int, typer.Option(help="TensorFlow threads (0: all).")] = 0,
) -> None:
    """Train the composition WGAN on the GAN training set, with checkpoints and resume."""
    from discovery.gan.recipe import train_gan

    overrides = {"iterations": iterations, "generator": generator, "loss": loss,
                 "n_critic": n_critic, "batch_size": batch_size, "seed": seed}
    state = train_gan(run_dir, overrides, resume, paper_setting, threads)
    Console().print(f"stopped at step {state.step} after {state.wall_seconds:.0f} s; "
                    f"checkpoint in {run_dir / 'last'}, log in {run_dir / 'log.csv'}")


@app.command("generators")
@friendly_errors
def generators_cmd() -> None:
    """The shipped generators with their model cards' benchmark figures (MP validation split)."""
    from discovery.generation.registry import TABLE_COLUMNS, generator_table

    table = Table(title="shipped generators",
                  caption="figures: 100,000 samples (seed 1) on the MP validation split, "
                          "pipelines/reports/bench_generators.md")
    for col in TABLE_COLUMNS:
        table.add_column(col, overflow="fold", no_wrap=col == "name",
                         justify="left" if col == "name" else "right")
    rows = generator_table()
    for row in rows:
        table.add_row(*(row[c] for c in TABLE_COLUMNS))
    out = Console()
    out.print(table)
    for row in rows:
        out.print(f"{row['name']}{' (default)' if row['default'] else ''}: {row['description']}; "
                  f"version {row['version']}, trained on {row['trained on']}", highlight=False)


def _train_generator_cmd(name: str):
    def train_cmd(
        data: Annotated[Path, typer.Option(help="CSV of training compositions (a formula column).")],
        out: Annotated[Path | None, typer.Option(help="Output directory (default runs/KIND).")] = None,
        column: Annotated[str, typer.Option(help="Formula column of the CSV.")] = "formula",
        seed: int = 0,
    ) -> None:
        from discovery.encoding import counts_to_formulas
        from discovery.generation.registry import new_generator
        from discovery.generation.training import read_training_csv

        ts = read_training_csv(data, column)
        out_console = Console()
        out_console.print(f"{data}: {ts.summary()}", highlight=False)
        for example in ts.examples:
            out_console.print(f"  skipped {example}", highlight=False)
        gen = new_generator(name)
        gen.card.update({"trained_on": str(data), "training_rows": ts.rows, "skipped_rows": ts.skipped})
        gen.fit(counts_to_formulas(ts.counts), seed=seed)  # the protocol's input: formulas
        gen.card["name"] = name  # the registry name (one class may ship as several)
        if gen.card.get("fit_summary"):
            out_console.print(gen.card["fit_summary"], highlight=False)
        directory = out or Path("runs") / name
        gen.save(directory)
        out_console.print(f"saved {name} {gen.card.get('version', '')} to {directory}", highlight=False)

    train_cmd.__doc__ = f"Fit the {name!r} generator on a CSV of compositions and save it."
    return train_cmd


def _register_train_commands() -> None:
    from discovery.generation.registry import trainable_names

    for name in trainable_names():
        train_app.command(name)(friendly_errors(_train_generator_cmd(name)))


_register_train_commands()


if __name__ == "__main__":  # pragma: no cover
    app()
