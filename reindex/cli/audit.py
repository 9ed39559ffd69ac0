"""`reindex audit BASE TUNED`: one call of `reindex.audit.audit`, then its report."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .common import JSON, QUIET, VERBOSE, Command, app, note, print_json, reporting

BASE = typer.Argument(..., metavar="BASE", help="The model before: HF directory, model.safetensors, "
                                                "a sharded index, or a run.")
TUNED = typer.Argument(..., metavar="TUNED", help="The model after: the same kinds, or a PEFT adapter "
                                                  "folder with trainable tokens.")
EXPECT = typer.Option([], "--expect-trainable", metavar="SPEC",
                      help="Rows meant to change (repeatable): added, run:RUN, ids:FILE, or a token.")
TOLERANCE = typer.Option(0.0, "--tolerance", min=0.0, help="Largest change per element still counted as "
                                                           "unchanged, in TUNED's dtype (default 0: bit-exact).")
KEY = typer.Option(None, "--key", help="The embedding tensor (default: found by name).")
HEAD_KEY = typer.Option(None, "--head-key", help="The head tensor (default: found by name).")
TOKENIZER = typer.Option(None, "--tokenizer", help="tokenizer.json naming TUNED's rows (default: the one beside it).")
TOP = typer.Option(20, "--top", min=0, metavar="N", help="How many changed rows to list per matrix.")
PLOT = typer.Option(None, "--plot", help="Draw the change per row against the row id (PNG).")


@app.command(cls=Command, short_help="Which embedding and head rows did a fine-tune change? Exit 3: unexpected ones.")
def audit(base: Path = BASE, tuned: Path = TUNED, expect_trainable: List[str] = EXPECT, tolerance: float = TOLERANCE,
          key: Optional[str] = KEY, head_key: Optional[str] = HEAD_KEY, tokenizer: Optional[Path] = TOKENIZER,
          top: int = TOP, plot: Optional[Path] = PLOT, json_output: bool = JSON, quiet: bool = QUIET,
          verbose: bool = VERBOSE) -> None:
    """Which embedding and head rows of TUNED differ from BASE, and are they the ones meant to change?

    Exit 0 when every row outside the expected set is unchanged, 3 when some changed.

    \b
    reindex audit llama/ llama-tuned/
    reindex audit llama/ llama-tuned/ --expect-trainable added --json
    reindex audit llama/ adapter/ --expect-trainable '<tool>' --expect-trainable '</tool>'
    reindex audit base/model.safetensors tuned/model.safetensors.index.json --tolerance 1e-3 --plot changes.png
    """
    from ..audit import audit as audit_checkpoints
    from ..audit import report as audit_report

    with reporting(quiet=quiet, verbose=verbose):
        if plot is not None:
            audit_report.check_plot_path(plot)  # before any work
        result = audit_checkpoints(base, tuned, key=key, head_key=head_key, tokenizer=tokenizer,
                                   expect=expect_trainable, tolerance=tolerance)
        if plot is not None:
            audit_report.plot(result, plot)
            note(f"wrote {plot}")
        if json_output:
            print_json(audit_report.to_json(result))
        elif not quiet:
            audit_report.render(result, top=top)
        for warning in result.warnings:
            note(f"reindex: warning: {warning}")
    raise typer.Exit(result.exit_code)
