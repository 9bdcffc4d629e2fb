"""The app under benchmark, plus two floor endpoints: constant JSON and `SELECT 1`."""

import os

from flask import jsonify
from sqlalchemy import text

from itvsh import create_app
from itvsh.core.access import public
from itvsh.extensions import db


def make_bench_app():
    app = create_app(
        {
            "ITVSH_ENV": "testing",
            "SECRET_KEY": os.environ["ITVSH_BENCH_SECRET"],
            "SQLALCHEMY_DATABASE_URI": os.environ["ITVSH_BENCH_DATABASE_URL"],
            "RATELIMIT_ENABLED": False,
        }
    )

    @app.get("/_bench/bare")
    @public
    def bare():
        return jsonify(ok=True)

    @app.get("/_bench/select1")
    @public
    def select1():
        return jsonify(value=db.session.execute(text("SELECT 1")).scalar_one())

    return app


app = make_bench_app() if "ITVSH_BENCH_DATABASE_URL" in os.environ else None
