"""Admin pages of staff capacity: the timeline (months x people) and the effort per target."""


def register(admin) -> None:
    pass
