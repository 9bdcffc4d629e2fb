"""Reports benchmark (filled in by the reports work)."""


def main() -> int:
    print("reports benchmark: not written yet")
    return 0
