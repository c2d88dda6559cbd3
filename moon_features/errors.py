"""The base of every error a user can cause; the CLI prints these without a traceback."""


class MoonFeaturesError(Exception):
    """Something in the user's data, config or environment needs fixing; the message says what."""
