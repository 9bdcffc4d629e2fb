"""The public OZG monitoring and its open data."""

from flask import Blueprint

bp = Blueprint("monitoring", __name__, url_prefix="/monitoring")
