"""``doqu migrate``: rewrite a versioned model's older documents at its current version."""

from __future__ import annotations

import click

from ._app import cli
from ._common import load_model, open_storage, progress, stderr_console

__all__ = ["migrate"]

#: Failed documents named in the summary (the rest are counted).
SHOWN_FAILURES = 20


@cli.command(short_help="Upgrade older documents to the model's Meta.version (resumable).")
@click.argument("url")
@click.argument("model_spec", metavar="MODULE:MODEL")
@click.option(
    "--batch",
    default=1000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Documents read per batch.",
)
@click.option("--dry-run", is_flag=True, help="Upgrade and validate each document, write nothing.")
def migrate(url: str, model_spec: str, batch: int, dry_run: bool) -> None:
    """Rewrite every document of MODEL's collection stored below its Meta.version.

    Each document is upgraded by the model's migrations, validated and written
    back at the current version, in batches. Killed half-way, run it again: it
    goes on with the documents still below the version, and never upgrades a
    document twice. Exits 1 if any document could not be upgraded (each is left
    as it was, and named).
    """
    model = load_model(model_spec)
    assert model is not None
    console = stderr_console()
    with open_storage(url) as db, progress(console) as bar:
        total = None if bar.disable else db.query(model.__doqu_collection__.name).count()
        task = bar.add_task(f"migrate {model.__name__}", total=total)
        report = db.migrate(
            model,
            batch=batch,
            dry_run=dry_run,
            progress=lambda n: bar.update(task, completed=n),
        )
    verb = "would upgrade" if dry_run else "upgraded"
    click.echo(
        f"{report.upgraded} {verb}, {report.current} already at version"
        f" {model.__doqu_version__}, {len(report.failed)} failed"
    )
    for pk, error in report.failed[:SHOWN_FAILURES]:
        click.echo(f"failed {pk}: {error}", err=True)
    if len(report.failed) > SHOWN_FAILURES:
        click.echo(f"… and {len(report.failed) - SHOWN_FAILURES} more", err=True)
    if report.failed:
        raise SystemExit(1)
