"""Login, logout, password change and language choice."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from itvsh.auth import services
from itvsh.auth.forms import LoginForm, PasswordChangeForm
from itvsh.auth.roles import ADMIN_UI, ALL_ROLES
from itvsh.core.access import public, roles_allowed
from itvsh.core.i18n import LANGUAGES
from itvsh.core.rules import RuleViolation
from itvsh.core.security import safe_next
from itvsh.extensions import db, limiter

bp = Blueprint("auth", __name__)


def home_for(user) -> str:
    if user.role in ADMIN_UI:
        return url_for("admin.index")
    return url_for("portal.index")


def _login_key() -> str:
    return "login-account:" + services.normalize_email(request.form.get("email", ""))[:254]


@bp.route("/login", methods=["GET", "POST"])
@public
@limiter.limit(lambda: current_app.config["ITVSH_LOGIN_LIMIT_ADDRESS"], methods=["POST"])
@limiter.limit(
    lambda: current_app.config["ITVSH_LOGIN_LIMIT_ACCOUNT"],
    methods=["POST"],
    key_func=_login_key,
    deduct_when=lambda response: response.status_code == 401,
)
def login():
    if current_user.is_authenticated and request.method == "GET":
        return redirect(safe_next(request.args.get("next")) or home_for(current_user))
    form = LoginForm()
    if request.method == "POST":
        user = None
        if form.validate_on_submit():
            user = services.authenticate(db.session, form.email.data, form.password.data)
        db.session.commit()  # the audit event of a failed login is kept too
        if user is None:
            # One message for every failure: it must not tell whether the account exists.
            flash(_("Email or password is wrong, or the account is deactivated."), "error")
            return render_template("auth/login.html", form=form), 401
        session.clear()  # a fresh session: no fixation
        if user.locale:
            session["locale"] = user.locale
        login_user(user, remember=False)
        return redirect(safe_next(request.args.get("next")) or home_for(user))
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["GET", "POST"])
@public
def logout():
    if request.method == "POST" and current_user.is_authenticated:
        services.logout(db.session, current_user._get_current_object())
        db.session.commit()
        logout_user()
        session.clear()
        return render_template("auth/logged_out.html")
    if not current_user.is_authenticated:
        return render_template("auth/logged_out.html")
    return render_template("auth/logout.html")


@bp.route("/account/password", methods=["GET", "POST"])
@roles_allowed(ALL_ROLES)
def change_password():
    form = PasswordChangeForm()
    if form.validate_on_submit():
        if form.new_password.data != form.confirm_password.data:
            form.confirm_password.errors.append(_("The two new passwords differ."))
        else:
            user = current_user._get_current_object()
            try:
                services.change_own_password(
                    db.session, user, form.current_password.data, form.new_password.data
                )
            except RuleViolation as exc:
                db.session.rollback()
                getattr(form, exc.field).errors.append(exc.message)
            else:
                db.session.commit()
                login_user(user)  # this session continues with the new version; all others end
                flash(_("Your password was changed. Other sessions of your account have ended."), "success")
                return redirect(home_for(user))
    return render_template("auth/password.html", form=form), 400 if form.errors else 200


@bp.post("/language")
@public
def set_language():
    """Switch the language; a logged-in user keeps the choice for later logins."""
    lang = request.form.get("language", "")
    if lang in LANGUAGES:
        session["locale"] = lang
        if current_user.is_authenticated and current_user.locale != lang:
            services.update_user(
                db.session,
                current_user._get_current_object(),
                current_user._get_current_object(),
                locale=lang,
            )
            db.session.commit()
    return redirect(safe_next(request.form.get("next")) or url_for("auth.index"))


def register_login_manager(login_manager) -> None:
    @login_manager.user_loader
    def load_user(session_id: str):
        return services.load_session_user(db.session, session_id)

    @login_manager.request_loader
    def load_user_from_token(req):
        # Bearer tokens are for the API only; pages need a session login (and CSRF).
        if not req.path.startswith("/api/"):
            return None
        header = req.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        return services.user_for_token(db.session, header[7:].strip())


@bp.get("/")
@public
def index():
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    return redirect(url_for("auth.login"))
