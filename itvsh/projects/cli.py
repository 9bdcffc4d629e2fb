"""`itvsh ozg ...` and `itvsh projects ...`: the commands of projects and OZG."""

from flask.cli import AppGroup

ozg_cli = AppGroup("ozg", help="The OZG catalogue, status and monitoring snapshots.")
