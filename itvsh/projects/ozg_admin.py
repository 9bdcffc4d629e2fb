"""Admin views of the OZG catalogue and status."""


def register(admin) -> None:
    pass
