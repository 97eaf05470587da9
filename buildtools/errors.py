"""The project's exceptions: the CLI prints their message on one line and exits non-zero."""


class MinimalDaskError(Exception):
    """A failure the user can act on; its message says what and how to fix it."""

    exit_code = 1


class ConfigError(MinimalDaskError):
    """An image definition, option or argument is invalid."""

    exit_code = 2


class EngineError(MinimalDaskError):
    """The Docker engine, buildx or emulation is missing or failed."""


class RegistryError(MinimalDaskError):
    """The registry cannot be reached or does not hold what was asked for."""


class BuildError(MinimalDaskError):
    """A build failed."""


class BudgetExceeded(MinimalDaskError):
    """One or more images are larger than their budget."""

    exit_code = 3
