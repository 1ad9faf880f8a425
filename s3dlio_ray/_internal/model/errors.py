"""The one exception family a user sees: each carries a single line saying what and how to fix,
and the exit code the command line ends with."""

from s3dlio_ray._internal.model.exit_codes import ExitCode


class S3DlioRayError(Exception):
    """An error the command line reports as one line, without a traceback."""

    exit_code = ExitCode.RUN_ERROR


class ConfigError(S3DlioRayError):
    """A setting has the wrong name, type or value: refused before anything started."""

    exit_code = ExitCode.BAD_INPUT


class Terminated(KeyboardInterrupt):
    """SIGTERM before the run could take it over (while the command loads, or Ray starts): like
    Ctrl-C, it unwinds everything begun so far."""
