"""What every /api/v1 endpoint shares: the blueprint, token/session auth with CSRF for cookies,
problem+json errors, one pagination convention and the OpenAPI document.

Domains add their endpoints in their own ``api.py`` on :data:`bp`; this package imports no domain.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from math import ceil

from flask import Blueprint, abort, jsonify, request, session, url_for
from flask_babel import gettext as _
from marshmallow import Schema, ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import BadRequest

from itvsh.core.errors import problem
from itvsh.core.rules import RuleViolation
from itvsh.extensions import csrf, db

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 500
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Ids are 32-bit Integer columns: a larger id in the path names no row (and overflows the driver).
MAX_ID = 2**31 - 1
# NUL cannot be stored in PostgreSQL text, lone surrogates cannot be encoded as UTF-8 at all.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


@bp.before_request
def _csrf_for_cookie_sessions():
    """Bearer-token calls need no CSRF token; a cookie session always does (X-CSRFToken), even when
    the request also carries a Bearer header (the session user would act)."""
    if request.method not in UNSAFE_METHODS:
        return
    bearer = request.headers.get("Authorization", "").startswith("Bearer ")
    if session.get("_user_id") or not bearer:
        csrf.protect()


@bp.before_request
def _refuse_unusable_input():
    """Answer 404/400 for ids and query values the database cannot take, instead of a 500."""
    for value in (request.view_args or {}).values():
        if isinstance(value, int) and not -MAX_ID <= value <= MAX_ID:
            abort(404)
    for name, value in request.args.items(multi=True):
        if _UNSTORABLE.search(name) or _UNSTORABLE.search(value):
            raise _bad(_("Query parameters must not contain NUL characters or invalid Unicode."))


@bp.errorhandler(ValidationError)
def _validation_error(exc: ValidationError):
    errors = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
    return problem(422, _("The request body has invalid fields."), errors=errors)


@bp.errorhandler(RuleViolation)
def _rule_violation(exc: RuleViolation):
    return problem(422, exc.message, errors=exc.as_errors())


class ConcurrentChange(Exception):
    """A concurrent request wrote the same row first (a unique constraint refused this one)."""


@bp.errorhandler(ConcurrentChange)
def _concurrent_change(_exc: ConcurrentChange):
    return problem(
        409,
        _("Another request changed the same data at the same time. Please repeat the request."),
        title=_("Conflict"),
    )


@contextmanager
def refusal_writes_nothing(fields: Mapping[str, str] | None = None) -> Iterator[None]:
    """A service may have changed objects before refusing: roll the whole unit of work back and
    name the field as the request names it (``fields``: service name -> request name). A unique
    constraint refusing a concurrent write answers 409."""
    try:
        yield
    except RuleViolation as exc:
        db.session.rollback()
        raise RuleViolation(exc.message, (fields or {}).get(exc.field, exc.field)) from None
    except IntegrityError:
        db.session.rollback()
        raise ConcurrentChange from None


@contextmanager
def unit_of_work(fields: Mapping[str, str] | None = None) -> Iterator[None]:
    """Run a write and commit it once; a refusal writes nothing (see :func:`refusal_writes_nothing`)."""
    with refusal_writes_nothing(fields):
        yield
        db.session.commit()


def json_body(schema: Schema, *, partial: bool = False) -> dict:
    """Load the request's JSON body through ``schema``; bad JSON or fields answer 400/422."""
    if not request.is_json:
        raise _bad(_("Send the body as JSON (Content-Type: application/json)."))
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # absurdly deep nesting: not a body any endpoint accepts
        data = None
    if not isinstance(data, dict):
        raise _bad(_("The body must be a JSON object."))
    unstorable = {
        str(key): [_("Text must not contain NUL characters or invalid Unicode.")]
        for key, value in data.items()
        if isinstance(value, str) and _UNSTORABLE.search(value)
    }
    if unstorable:
        raise ValidationError(unstorable)
    return schema.load(data, partial=partial)


def _bad(detail: str) -> BadRequest:
    exc = BadRequest(detail)
    exc.itvsh_detail = detail
    return exc


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    # isascii: str.isdigit() admits digits such as "²" that int() refuses; len: int() refuses
    # strings of more than 4300 digits, and no valid value has more than a few.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18) or not (low <= int(raw) <= high):
        raise _bad(
            _(
                "Query parameter %(name)s must be a whole number from %(low)d to %(high)d.",
                name=name,
                low=low,
                high=high,
            )
        )
    return int(raw)


def paginate(session, statement, schema: Schema):
    """One pagination convention for every list: ``?page=&per_page=``, answered with
    ``{"items": [...], "meta": {"page", "per_page", "total", "pages"}}`` and a ``Link`` header."""
    per_page = _int_arg("per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE)
    page = _int_arg("page", 1, 1, 10**9)
    total = session.execute(
        select(func.count()).select_from(statement.order_by(None).subquery())
    ).scalar_one()
    items = session.execute(statement.limit(per_page).offset((page - 1) * per_page)).scalars().all()
    pages = max(1, ceil(total / per_page))
    response = jsonify(
        items=schema.dump(items, many=True),
        meta={"page": page, "per_page": per_page, "total": total, "pages": pages},
    )
    links = []
    args = {k: v for k, v in request.args.items() if k not in ("page", "per_page")}
    for rel, target in (("prev", page - 1), ("next", page + 1)):
        if 1 <= target <= pages:
            url = url_for(
                request.endpoint, **(request.view_args or {}), **args, page=target, per_page=per_page
            )
            links.append(f'<{url}>; rel="{rel}"')
    if links:
        response.headers["Link"] = ", ".join(links)
    return response


def doc(
    summary: str,
    *,
    response: Schema | type | None = None,
    body: Schema | type | None = None,
    paginated: bool = False,
    params: list[dict] | None = None,
    status: int = 200,
) -> Callable:
    """Describe an endpoint for the OpenAPI document (every /api/v1 endpoint must have one)."""

    def decorate(view):
        view.itvsh_openapi = {
            "summary": summary,
            "response": response,
            "body": body,
            "paginated": paginated,
            "params": params or [],
            "status": status,
        }
        return view

    return decorate
