"""The service's configuration, one object for every process: the API, the workers, the CLI.

`settings.load()` gives defaults, overridden by the environment, overridden by the caller:
the app factory's test overrides, or the flags of a `digits` command.
"""
