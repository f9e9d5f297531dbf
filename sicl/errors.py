"""Errors that mean "the user's input is bad": the CLI prints them as one line and exits non-zero."""


class SiclError(Exception):
    """Base class for problems the user can fix (bad data, bad config, missing files)."""


class ManifestError(SiclError):
    """A manifest row (or the file itself) breaks the manifest contract."""


class AudioError(SiclError):
    """An audio file is missing, unreadable, empty, non-finite or too long."""


class ConfigError(SiclError):
    """A config file or a key=value override is invalid."""
