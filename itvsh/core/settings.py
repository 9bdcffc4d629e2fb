"""Federation-wide switches an admin sets at run time (not deployment configuration): a key, a text
value, audited when changed. Unknown keys read as their default."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from itvsh.core import audit
from itvsh.core.db import utcnow
from itvsh.extensions import db

# Whether auditors' exports of staff data show names instead of the stable pseudonyms.
AUDITORS_SEE_STAFF_NAMES = "staffing.auditors_see_names"


class Setting(db.Model):
    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(String(500))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


def get_flag(session: Session, key: str, default: bool = False) -> bool:
    value = session.execute(select(Setting.value).where(Setting.key == key)).scalar_one_or_none()
    return default if value is None else value == "1"


def set_flag(session: Session, actor, key: str, on: bool) -> None:
    """Set a switch; the change (and only a change) lands in the audit trail."""
    setting = session.get(Setting, key)
    before = None if setting is None else setting.value == "1"
    if before == on:
        return
    if setting is None:
        session.add(Setting(key=key, value="1" if on else "0"))
    else:
        setting.value = "1" if on else "0"
    audit.record(session, actor, "update", "setting", key, before={"value": before}, after={"value": on})
