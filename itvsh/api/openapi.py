"""The OpenAPI 3 document, assembled with apispec from the routes of the API blueprint and the
marshmallow schemas their ``@doc`` names, so it never drifts from what the endpoints do."""

from __future__ import annotations

import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import current_app, jsonify

from itvsh.api import bp
from itvsh.core.access import declared_roles, public

PROBLEM = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
    },
    "required": ["title", "status"],
}
PAGE_META = {
    "type": "object",
    "properties": {k: {"type": "integer"} for k in ("page", "per_page", "total", "pages")},
}
_RULE_ARG = re.compile(r"<(?:(?P<conv>[a-z]+):)?(?P<name>\w+)>")


def _schema_name(schema) -> str:
    cls = schema if isinstance(schema, type) else type(schema)
    return cls.__name__.removesuffix("Schema")


def build_spec(app) -> dict:
    spec = APISpec(
        title="ITV-SH API",
        version="1",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={
            "description": "Administration system of the IT-Verbund Schleswig-Holstein. Money is integer "
            "cents (fields *_cents). Errors are application/problem+json."
        },
        servers=[{"url": "/"}],
    )
    spec.components.schema("Problem", PROBLEM)
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.security_scheme("session", {"type": "apiKey", "in": "cookie", "name": "itvsh_session"})
    for name in ("PageMeta",):
        spec.components.schema(name, PAGE_META)
    paths: dict[str, dict] = {}
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith(bp.name + "."):
            continue
        view = app.view_functions[rule.endpoint]
        meta = getattr(view, "itvsh_openapi", None)
        if meta is None:
            continue
        path = _RULE_ARG.sub(lambda m: "{" + m.group("name") + "}", rule.rule)
        parameters = [
            {
                "name": m.group("name"),
                "in": "path",
                "required": True,
                "schema": {"type": "integer" if m.group("conv") == "int" else "string"},
            }
            for m in _RULE_ARG.finditer(rule.rule)
        ] + list(meta["params"])
        if meta["paginated"]:
            parameters += [
                {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}},
                {
                    "name": "per_page",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                },
            ]
        roles = declared_roles(app, rule.endpoint)
        operation: dict = {
            "summary": meta["summary"],
            "operationId": rule.endpoint.split(".", 1)[1],
            "parameters": parameters,
            "responses": {
                "default": {
                    "description": "Error",
                    "content": {
                        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                    },
                },
            },
        }
        if roles != "public":
            operation["security"] = [{"bearer": []}, {"session": []}]
            operation["description"] = "Roles: " + ", ".join(sorted(roles or []))
        if meta["response"] is not None:
            name = _schema_name(meta["response"])
            if name not in spec.components.schemas:
                spec.components.schema(name, schema=meta["response"])
            ref = {"$ref": f"#/components/schemas/{name}"}
            if meta["paginated"]:
                ref = {
                    "type": "object",
                    "properties": {
                        "items": {"type": "array", "items": ref},
                        "meta": {"$ref": "#/components/schemas/PageMeta"},
                    },
                }
            operation["responses"][str(meta["status"])] = {
                "description": "OK",
                "content": {"application/json": {"schema": ref}},
            }
        else:
            operation["responses"][str(meta["status"])] = {"description": "OK"}
        if meta["body"] is not None:
            name = _schema_name(meta["body"])
            if name not in spec.components.schemas:
                spec.components.schema(name, schema=meta["body"])
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
            }
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = operation
    for path, operations in sorted(paths.items()):
        spec.path(path=path, operations=operations)
    return spec.to_dict()


@bp.get("/openapi.json")
@public
def openapi_document():
    key = "itvsh_openapi"
    if key not in current_app.extensions:
        current_app.extensions[key] = build_spec(current_app)
    return jsonify(current_app.extensions[key])
