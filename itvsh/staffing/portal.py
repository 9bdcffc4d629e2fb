"""The member portal's staff page: who works for the member."""

from flask import Blueprint

bp = Blueprint("staffing_portal", __name__, url_prefix="/portal/staff")
