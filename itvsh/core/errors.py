"""Error answers: a German/English page for people, ``application/problem+json`` for the API.

Never a traceback: unexpected exceptions are logged with their stack and answered with a 500 page.
"""

from __future__ import annotations

from flask import Flask, current_app, jsonify, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

PROBLEM_JSON = "application/problem+json"


def _messages() -> dict[int, tuple[str, str]]:
    return {
        400: (_("Bad request"), _("The request could not be understood. Please check your input.")),
        401: (_("Login required"), _("Please log in to see this page.")),
        403: (_("Access denied"), _("Your account is not allowed to see this page.")),
        404: (_("Not found"), _("There is no page at this address.")),
        405: (_("Method not allowed"), _("This address does not accept this kind of request.")),
        413: (_("Too large"), _("The upload is too large.")),
        422: (_("Invalid input"), _("Some fields are invalid. Please check them.")),
        429: (_("Too many requests"), _("Too many attempts. Please wait a few minutes and try again.")),
        500: (
            _("Internal error"),
            _("Something went wrong on our side. The error was logged; please try again later."),
        ),
        503: (_("Unavailable"), _("The service is temporarily unavailable.")),
    }


def problem(status: int, detail: str | None = None, errors: dict | None = None, title: str | None = None):
    """A problem+json response (RFC 9457)."""
    default_title, default_detail = _messages().get(status, (str(status), ""))
    body = {
        "type": "about:blank",
        "title": title or default_title,
        "status": status,
        "detail": detail or default_detail,
    }
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    response.mimetype = PROBLEM_JSON
    return response


def wants_problem_json() -> bool:
    return request.path.startswith("/api/")


def _page(status: int, detail: str | None = None):
    title, default_detail = _messages().get(status, (str(status), ""))
    return render_template("error.html", status=status, title=title, detail=detail or default_detail), status


def handle_http_error(exc: HTTPException):
    status = exc.code or 500
    if status < 400:
        return exc
    # Only our own messages reach people: werkzeug's default descriptions are English boilerplate.
    detail = getattr(exc, "itvsh_detail", None)
    response = problem(status, detail) if wants_problem_json() else _page(status, detail)
    if status == 405 and getattr(exc, "valid_methods", None):
        response = current_app.make_response(response)
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    if status == 401 and wants_problem_json():
        response = current_app.make_response(response)
        response.headers["WWW-Authenticate"] = 'Bearer realm="itvsh"'
    return response


def handle_csrf_error(exc: CSRFError):
    detail = _(
        "The form was open too long or is incomplete (security token missing or expired). "
        "Please reload the page and submit it again."
    )
    return problem(400, detail) if wants_problem_json() else _page(400, detail)


def handle_unexpected(exc: Exception):
    if isinstance(exc, HTTPException):
        return handle_http_error(exc)
    current_app.logger.exception("unhandled error on %s %s", request.method, request.path)
    return handle_http_error(InternalServerError())


def register_errorhandlers(app: Flask) -> None:
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected)
