"""Admin views of projects."""


def register(admin) -> None:
    pass
