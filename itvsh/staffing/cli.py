"""`itvsh staff ...`: the staffing commands."""

from flask.cli import AppGroup

staff_cli = AppGroup("staff", help="Seconded staff, secondments and assignments.")
