"""The ``discover`` command line: a thin layer over the package's objects."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Screen inorganic composition space for new materials.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
data_app = typer.Typer(help="Fetch and inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

console = Console(stderr=True)


def friendly_errors(fn):
    """Turn the package's own errors into one red line and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from discovery.errors import USER_ERRORS

        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as exc:
            console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapper


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


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
    out.print(f"known compositions (unique reduced): {len(known):,}")
    for name, n in known.sources.items():
        out.print(f"  {name}: {n:,}")
    if known.skipped:
        out.print(f"  skipped rows: {known.skipped}")


if __name__ == "__main__":  # pragma: no cover
    app()
