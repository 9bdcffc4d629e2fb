"""The `itvsh` console script: a FlaskGroup over create_app (so `itvsh db upgrade`, `itvsh run`,
`itvsh routes` work) plus the domain commands that create_app registers."""

from __future__ import annotations

import sys

import click
from flask.cli import FlaskGroup

from itvsh import create_app
from itvsh.config import ConfigError


def _make_app():
    return create_app()


@click.group(cls=FlaskGroup, create_app=_make_app, help="ITV-SH administration system.")
def main():
    pass


def run():
    """The console script: a configuration problem is a one-line message, never a traceback."""
    try:
        main.main(standalone_mode=True)
    except ConfigError as exc:
        click.echo(f"itvsh: configuration error: {exc}", err=True)
        sys.exit(2)
