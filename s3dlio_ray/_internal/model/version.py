"""The tool's version, in one place: the package exports it, results and metrics record it."""

VERSION = "0.1.0"
