"""The base of every error shiftlens raises for a bad input or setting: the CLI prints these as one line."""


class ShiftlensError(Exception):
    """An error whose message tells the user what was wrong and what to do; no traceback needed."""
