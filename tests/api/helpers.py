"""Assertions shared by the API tests (problem+json answers)."""

from __future__ import annotations

PROBLEM_JSON = "application/problem+json"


def assert_problem(response, status: int) -> dict:
    """The response is an RFC 9457 problem of ``status`` with a human title and detail; returns its body."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    assert response.mimetype == PROBLEM_JSON, response.mimetype
    body = response.get_json(force=True)
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"].strip()
    assert body["title"] != str(status), "the title must say what went wrong, not repeat the code"
    assert isinstance(body["detail"], str)
    assert body["detail"].strip()
    assert "Traceback" not in response.get_data(as_text=True)
    return body


def field_errors(response, status: int = 422) -> dict[str, list[str]]:
    """The ``errors`` member of a problem answer: field name -> messages."""
    body = assert_problem(response, status)
    errors = body.get("errors")
    assert isinstance(errors, dict), body
    for messages in errors.values():
        assert isinstance(messages, list)
        assert messages
        assert all(isinstance(m, str) and m for m in messages)
    return errors
