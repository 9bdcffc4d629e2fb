"""The `itvsh` console script: a FlaskGroup over create_app (so `itvsh db upgrade`, `itvsh run`,
`itvsh routes` work) plus the domain commands that create_app registers."""

from __future__ import annotations

import click
from flask.cli import FlaskGroup

from itvsh import create_app


def _make_app():
    return create_app()


@click.group(cls=FlaskGroup, create_app=_make_app, help="ITV-SH administration system.")
def main():
    pass
