"""Admin views of staffing."""


def register(admin) -> None:
    pass
