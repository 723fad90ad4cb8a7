"""The package version, in one place (the saved-fit format and the CLI print it)."""

__version__ = "0.1.0"
