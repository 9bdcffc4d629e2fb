"""The projects and OZG demo."""


def load_projects(session, today=None) -> list[str]:
    return []
