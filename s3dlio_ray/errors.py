"""The one exception family a user sees: each carries a single line saying what and how to fix."""


class S3DlioRayError(Exception):
    """An error the command line reports as one line, without a traceback."""

    exit_code = 1


class ConfigError(S3DlioRayError):
    """A setting has the wrong name, type or value."""

    exit_code = 2
