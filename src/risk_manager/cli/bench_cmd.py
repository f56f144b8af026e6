"""`risk-manager bench [NAME…]`: run the benchmarks in `bench/` and write JSON results."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from risk_manager import benchkit

console = Console(stderr=True)


def bench(
    names: list[str] = typer.Argument(None, help="Benchmarks to run (default: all). See --list."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the results to this JSON file."),
    compare_to: Path | None = typer.Option(None, "--compare", help="A previous results file: print ratios."),
    list_only: bool = typer.Option(False, "--list", help="List the benchmarks and exit."),
) -> None:
    """Run benchmarks (not tests): figures are medians/percentiles, written with the machine description."""
    try:
        bench_dir = benchkit.find_bench_dir()
    except FileNotFoundError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    found = benchkit.available(bench_dir)
    if list_only:
        for name, path in found.items():
            console.print(f"{name:16} {getattr(benchkit.load(path), 'DESCRIPTION', '')}")
        return
    selected = names or list(found)
    unknown = [n for n in selected if n not in found]
    if unknown:
        console.print(f"[red]error:[/red] unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(found)}")
        raise typer.Exit(2)
    baseline = None
    if compare_to is not None:
        try:
            baseline = json.loads(compare_to.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            console.print(f"[red]error:[/red] cannot read --compare file {compare_to}: {exc}")
            raise typer.Exit(2) from None
    results: dict[str, list[benchkit.Figure]] = {}
    for name in selected:
        module = benchkit.load(found[name])
        started = time.perf_counter()
        with console.status(f"bench {name}…") as status:
            figures = module.run(lambda msg, _n=name: status.update(f"bench {_n}: {msg}"))
        results[name] = figures
        table = Table(title=f"{name} ({time.perf_counter() - started:.1f} s)")
        for col in ("figure", "value", "unit", "target", "met"):
            table.add_column(col)
        for f in figures:
            met = "" if f.met is None else ("yes" if f.met else "[red]NO[/red]")
            target = "" if f.target is None else f"{'≤' if f.better == 'lower' else '≥'} {f.target:g}"
            table.add_row(f.name, f"{f.value:.4g}", f.unit, target, met)
        Console().print(table)
    root = bench_dir.parent
    document = benchkit.result_document(results, root)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = bench_dir / "results" / f"{stamp}.json"
    benchkit.write_json(document, out)
    if json_out is not None:
        benchkit.write_json(document, json_out)
    console.print(f"results written to {out}" + (f" and {json_out}" if json_out else ""))
    if baseline is not None:
        table = Table(title=f"compared with {compare_to}")
        for col in ("benchmark", "figure", "now", "baseline", "ratio"):
            table.add_column(col)
        for bench_name, fig, now, base, ratio in benchkit.compare(document, baseline):
            table.add_row(bench_name, fig, f"{now:.4g}", f"{base:.4g}", f"{ratio:.2f}×")
        Console().print(table)
