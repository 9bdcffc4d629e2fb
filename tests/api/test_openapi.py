"""The OpenAPI document at /api/v1/openapi.json: public, OpenAPI 3.0, and complete -- every /api/v1
route of the app is documented with its methods, bodies, schemas and problem+json errors."""

from __future__ import annotations

import importlib.util
import re

import pytest

OPERATION_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
_ARG = re.compile(r"<(?:[^:>]+:)?(\w+)>")


@pytest.fixture
def spec(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def app_api_operations(app) -> set[tuple[str, str]]:
    """(path in OpenAPI form, method) of every /api/v1 route, except the document itself."""
    operations = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.rule == "/api/v1/openapi.json":
            continue
        path = _ARG.sub(r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            operations.add((path, method.lower()))
    return operations


def spec_operations(spec) -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, item in spec["paths"].items()
        for method in item
        if method in OPERATION_METHODS
    }


def resolve(spec, ref: str) -> dict:
    assert ref.startswith("#/"), ref
    node = spec
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def all_refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from all_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from all_refs(value)


def test_document_is_public_json(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"


def test_document_is_openapi_3_0(spec):
    assert re.fullmatch(r"3\.0\.\d+", spec["openapi"])
    assert spec["info"]["title"]
    assert spec["info"]["version"]
    assert isinstance(spec["paths"], dict)


def test_every_api_route_is_documented_and_nothing_else(app, spec):
    routes = app_api_operations(app)
    assert ("/api/v1/users/{user_id}", "patch") in routes  # the walk itself finds what it should
    documented = {(path, method) for path, method in spec_operations(spec) if path != "/api/v1/openapi.json"}
    assert documented == routes


def test_path_parameters_are_declared(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"{(\w+)}", path)), (method, path)
    user_id = next(
        p for p in spec["paths"]["/api/v1/users/{user_id}"]["get"]["parameters"] if p["name"] == "user_id"
    )
    assert user_id["required"] is True
    assert user_id["schema"]["type"] == "integer"


def test_operation_ids_are_unique(spec):
    ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_writes_have_a_json_request_body(spec):
    writes = [
        (path, method, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in ("post", "put", "patch")
    ]
    assert {(p, m) for p, m, _ in writes} >= {("/api/v1/users", "post"), ("/api/v1/users/{user_id}", "patch")}
    for path, method, op in writes:
        body = op.get("requestBody")
        assert body, (method, path)
        schema = body["content"]["application/json"]["schema"]
        assert "properties" in resolve(spec, schema["$ref"]), (method, path)
    create = spec["paths"]["/api/v1/users"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/UserCreate")
    assert "201" in create["responses"]


def test_user_schemas(spec):
    schemas = spec["components"]["schemas"]
    user, create = schemas["User"], schemas["UserCreate"]
    assert {"id", "email", "role", "tenant", "active", "locale"} <= set(user["properties"])
    assert "password" not in user["properties"]
    assert user["properties"]["id"]["readOnly"] is True
    assert set(create["required"]) == {"email", "role", "password"}
    assert create["properties"]["password"].get("writeOnly") is True
    assert create["properties"]["password"]["minLength"] == 12
    assert create["properties"]["role"]["enum"] == ["admin", "staff", "auditor", "municipality"]
    assert create["additionalProperties"] is False  # unknown fields are refused (unknown = RAISE)


def test_every_operation_has_a_problem_default_response(spec):
    for path, item in spec["paths"].items():
        for method, op in item.items():
            default = op["responses"]["default"]
            schema = default["content"]["application/problem+json"]["schema"]
            problem = resolve(spec, schema["$ref"])
            assert {"title", "status", "detail", "errors"} <= set(problem["properties"]), (method, path)
            assert any(code.startswith("2") for code in op["responses"]), (method, path)


def test_list_operations_document_pagination(spec):
    for path in ("/api/v1/users", "/api/v1/audit-events"):
        op = spec["paths"][path]["get"]
        names = {p["name"] for p in op["parameters"]}
        assert {"page", "per_page"} <= names, path
        per_page = next(p for p in op["parameters"] if p["name"] == "per_page")
        assert per_page["schema"]["maximum"] == 500
        ok = op["responses"]["200"]["content"]["application/json"]["schema"]
        assert set(ok["properties"]) == {"items", "meta"}
        assert set(resolve(spec, ok["properties"]["meta"]["$ref"])["properties"]) == {
            "page",
            "per_page",
            "total",
            "pages",
        }


def test_protected_operations_declare_security(app, spec):
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer"}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            assert op.get("security"), (method, path)
            for requirement in op["security"]:
                assert set(requirement) <= set(schemes)


def test_every_reference_resolves(spec):
    refs = set(all_refs(spec))
    assert refs
    for ref in refs:
        assert isinstance(resolve(spec, ref), dict), ref


def structural_problems(spec) -> list[str]:
    """The OpenAPI 3.0 rules a client generator trips over first (used when no validator is installed)."""
    found = []
    for key in ("openapi", "info", "paths"):
        if key not in spec:
            found.append(f"missing top-level {key}")
    for path, item in spec.get("paths", {}).items():
        if not path.startswith("/"):
            found.append(f"path {path} does not start with /")
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            if method not in OPERATION_METHODS:
                found.append(f"{where}: unknown method")
                continue
            if not op.get("responses"):
                found.append(f"{where}: no responses")
            for code, response in op.get("responses", {}).items():
                if not (code == "default" or re.fullmatch(r"[1-5](\d\d|XX)", code)):
                    found.append(f"{where}: bad status {code}")
                if not isinstance(response.get("description"), str):
                    found.append(f"{where}: response {code} has no description")
            seen = set()
            for param in op.get("parameters", []):
                if param.get("in") not in ("path", "query", "header", "cookie") or not param.get("name"):
                    found.append(f"{where}: bad parameter {param}")
                if (param.get("name"), param.get("in")) in seen:
                    found.append(f"{where}: duplicate parameter {param.get('name')}")
                seen.add((param.get("name"), param.get("in")))
                if param.get("in") == "path" and param.get("required") is not True:
                    found.append(f"{where}: path parameter {param.get('name')} not required")
                if "schema" not in param and "content" not in param:
                    found.append(f"{where}: parameter {param.get('name')} has no schema")
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
            found.append(f"bad component name {name}")
        if schema.get("type") == "object" and "properties" not in schema:
            found.append(f"component {name} has no properties")
    return found


def test_document_validates(spec):
    """openapi-spec-validator is not a dependency: use it if present, else check the structure."""
    if importlib.util.find_spec("openapi_spec_validator") is not None:
        from openapi_spec_validator import validate

        validate(spec)
    assert structural_problems(spec) == []


def test_structural_check_can_fail(spec):
    broken = {**spec, "paths": {"users": {"get": {"responses": {"OK": {}}, "parameters": [{"in": "body"}]}}}}
    assert len(structural_problems(broken)) == 5
