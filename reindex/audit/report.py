"""An `AuditReport` as JSON, as Rich tables on a terminal, and as a plot of the change per row."""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from .compare import EDGES
from .result import AuditReport, MatrixAudit


def _number(value: float) -> float | str:
    """JSON has no infinity: a NaN or infinite change is written as the string "inf"."""
    return float(value) if math.isfinite(value) else "inf"


def matrix_json(report: AuditReport, matrix: MatrixAudit, *, top: int | None = None) -> dict[str, Any]:
    """One matrix as JSON: its counts, histogram and changed rows (the first `top`, or all)."""
    out: dict[str, Any] = {"name": matrix.name, "base_key": matrix.base_key, "tuned_key": matrix.tuned_key,
                           "base_dtype": matrix.base_dtype, "tuned_dtype": matrix.tuned_dtype,
                           "compared_in": matrix.compared_in, "tied": matrix.tied or None}
    changes = matrix.changes
    if changes is None:
        return {**out, "compared": False}
    expected = report.expected if report.expected is not None else np.zeros(0, dtype=np.int64)
    rows = changes.changed[:top].tolist()
    flags = np.isin(changes.changed[:top], expected).tolist()
    lows = (0.0, *EDGES[:-1])
    return {**out, "compared": True, "rows_compared": changes.compared, "rows_identical": changes.identical,
            "rows_within_tolerance": changes.within_tolerance, "rows_changed": int(changes.changed.shape[0]),
            "rows_changed_unexpected": int(matrix.unexpected.shape[0]),
            "rows_only_in_tuned": matrix.only_in_tuned, "rows_only_in_base": matrix.only_in_base,
            "largest_change": None if not rows else {"id": rows[0], "token": report.token(rows[0]),
                                                     "change": _number(changes.change[0])},
            "histogram": [{"above": low, "up_to": _number(high), "rows": count}
                          for low, high, count in zip(lows, EDGES, changes.histogram, strict=False)],
            "changed": [{"id": row, "token": report.token(row), "change": _number(change), "expected": flag}
                        for row, change, flag in zip(rows, changes.change[:top].tolist(), flags, strict=False)],
            "expected_unchanged": matrix.never_changed.tolist()}


def to_json(report: AuditReport) -> dict[str, Any]:
    """The whole report, every changed row listed: what `reindex audit --json` prints."""
    return {"command": "audit", "base": report.base, "tuned": report.tuned, "base_kind": report.base_kind,
            "tuned_kind": report.tuned_kind, "matched_by": report.matched_by, "tolerance": report.tolerance,
            "tolerance_in_tuned_dtype": report.tolerance_used, "expect": report.expect,
            "expected_rows": None if report.expected is None else int(report.expected.shape[0]),
            "ok": report.exit_code == 0, "exit_code": report.exit_code,
            "matrices": [matrix_json(report, m) for m in report.matrices],
            "tokens_only_in_base": report.tokens_only_in_base, "tokens_only_in_tuned": report.tokens_only_in_tuned,
            "notes": report.notes, "warnings": report.warnings}


def verdict(report: AuditReport) -> str:
    """One line: what the exit status says."""
    unexpected = {m.name: int(m.unexpected.shape[0]) for m in report.matrices if m.unexpected.size}
    if not unexpected:
        where = "outside the expected rows " if report.expected is not None else ""
        return f"ok: no row {where}changed"
    counts = ", ".join(f"{n:,} {name}" for name, n in unexpected.items())
    where = " outside the expected set" if report.expected is not None else ""
    return f"changed: {counts} row(s){where} (exit {report.exit_code})"


def render(report: AuditReport, *, top: int = 20, console: Any = None) -> None:
    """Print the summary, the histogram and the `top` largest changes of each matrix as Rich tables."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console()
    table = Table(title=Text(f"audit {report.base} -> {report.tuned} (rows matched by {report.matched_by})"))
    table.add_column("")
    shown = [matrix_json(report, m, top=top) for m in report.matrices]
    for entry in shown:
        table.add_column(entry["name"], justify="right")
    for label, cell in _SUMMARY:
        if label == "within tolerance" and report.tolerance == 0:
            continue
        table.add_row(label, *(Text(cell(e)) for e in shown))
    console.print(table)
    for entry in shown:
        if entry.get("changed"):
            console.print(_changed_table(entry, Table, Text))
    for note in report.notes:
        console.print(Text(f"note: {note}"))
    console.print(Text(verdict(report)))


def _tied(entry: dict[str, Any]) -> str:
    if entry["name"] == "embedding":
        return ""
    return {"both": "tied in both", "BASE": "BASE tied to its embedding", "TUNED": "TUNED tied to its embedding",
            }.get(entry["tied"] or "", "no" if entry["compared"] else "")


def _dtype(e: dict[str, Any]) -> str:
    if not e["compared"]:
        return ""
    same = e["base_dtype"] == e["tuned_dtype"]
    return e["base_dtype"] if same else f"{e['base_dtype']} vs {e['tuned_dtype']}, as {e['compared_in']}"


def _count(name: str) -> Any:
    return lambda e: f"{e[name]:,}" if e["compared"] else "-"


def _largest(e: dict[str, Any]) -> str:
    top = e.get("largest_change")
    if not top:
        return ""
    change = "inf" if top["change"] == "inf" else f"{top['change']:.3g}"
    return f"{change} (id {top['id']}{'' if top['token'] is None else ' ' + repr(top['token'])})"


def _histogram(e: dict[str, Any]) -> str:
    if not e["compared"]:
        return ""
    return "  ".join(f"<={b['up_to']:g}: {b['rows']:,}" if b["up_to"] != "inf" else f">1: {b['rows']:,}"
                     for b in e["histogram"] if b["rows"])


_SUMMARY = (("tensor", lambda e: e["tuned_key"] or e["base_key"] or "none"), ("tied", _tied), ("dtype", _dtype),
            ("rows compared", _count("rows_compared")), ("bit-identical", _count("rows_identical")),
            ("within tolerance", _count("rows_within_tolerance")), ("changed", _count("rows_changed")),
            ("changed, not expected", _count("rows_changed_unexpected")),
            ("only in TUNED", _count("rows_only_in_tuned")), ("only in BASE", _count("rows_only_in_base")),
            ("largest change", _largest), ("changes (rows by size)", _histogram))


def _changed_table(entry: dict[str, Any], Table: Any, Text: Any) -> Any:
    title = f"{entry['name']}: the {len(entry['changed'])} largest of {entry['rows_changed']:,} changed rows"
    table = Table(title=title)
    for name, justify in (("id", "right"), ("token", "left"), ("change", "right"), ("expected", "left")):
        table.add_column(name, justify=justify)
    for row in entry["changed"]:
        token = "" if row["token"] is None else repr(row["token"])
        table.add_row(str(row["id"]), Text(token), f"{row['change']:.3g}" if row["change"] != "inf" else "inf",
                      "yes" if row["expected"] else "no")
    return table


def check_plot_path(path: str | Path) -> None:
    """Refuse a --plot path that cannot be written, before any work (exit 2), as `inspect --plot` does."""
    from ..commands.inspect import check_plot_path as check

    check(path)


def plot(report: AuditReport, path: str | Path) -> None:
    """Draw each compared matrix's change per row against the row id, the expected rows shaded (matplotlib).
    Never over BASE or TUNED, nor inside them (the inputs registry, as for every output)."""
    from ..io.inputs import Inputs
    from ..io.outputs import check_output

    check_plot_path(path)
    inputs = Inputs()
    inputs.add("BASE", report.base)
    inputs.add("TUNED", report.tuned)
    check_output(path, kind="plot", force=True, inputs=inputs, option="--plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    compared = [m for m in report.matrices if m.changes is not None]
    fig, axes = plt.subplots(len(compared), 1, figsize=(10, 3.5 * len(compared)), squeeze=False)
    for ax, matrix in zip(axes[:, 0], compared, strict=False):
        _plot_matrix(ax, report, matrix)
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, dpi=120, format=Path(path).suffix.lower().lstrip("."))
    plt.close(fig)
    _publish(Path(path), image)


def _plot_matrix(ax: Any, report: AuditReport, matrix: MatrixAudit) -> None:
    changes = matrix.changes
    if changes is None:
        return
    if report.expected is not None and report.expected.size:
        ids = report.expected
        breaks = np.flatnonzero(np.diff(ids) != 1) + 1
        starts, stops = np.r_[ids[0], ids[breaks]], np.r_[ids[breaks - 1], ids[-1]] + 1
        spans = list(zip(starts - 0.5, stops - starts, strict=True))
        ax.broken_barh(spans, (0, 1), transform=ax.get_xaxis_transform(), color="tab:green", alpha=0.15,
                       label="expected rows")
    finite = np.where(np.isfinite(changes.change), changes.change, np.nan)
    outside = ~np.isin(changes.changed, report.expected if report.expected is not None else [])
    for mask, color, label in ((outside, "tab:red", "changed, not expected"),
                               (~outside, "tab:blue", "changed, expected")):
        if mask.any():
            ax.scatter(changes.changed[mask], np.maximum(finite[mask], 1e-12), s=6, color=color, label=label)
    ax.set_yscale("log")
    shown = finite[np.isfinite(finite) & (finite > 0)]
    if shown.size:
        ax.set_ylim(shown.min() / 10, shown.max() * 10)
    ax.set_xlim(-0.5, changes.compared + matrix.only_in_tuned - 0.5)
    ax.set_xlabel("row id in TUNED")
    ax.set_ylabel("largest |change| in the row")
    ax.set_title(f"{matrix.name}: {changes.changed.shape[0]:,} of {changes.compared:,} rows changed, "
                 f"{matrix.unexpected.shape[0]:,} not expected")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right")


def _publish(path: Path, image: io.BytesIO) -> None:
    """Written atomically, and over an existing file only if it is an earlier plot (`io.outputs`)."""
    from ..io.atomic import atomic_file
    from ..io.outputs import PLOT_FORMAT, mark, replacer

    with atomic_file(path, force=True, replace=replacer("plot")) as temporary:
        temporary.write_bytes(image.getbuffer())
        mark(temporary, PLOT_FORMAT)
