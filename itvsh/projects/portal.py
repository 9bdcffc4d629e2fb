"""The member portal's projects and OZG pages."""

from flask import Blueprint

bp = Blueprint("projects_portal", __name__, url_prefix="/portal")
