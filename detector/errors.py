"""The one exception family of the detector."""


class DetectorError(Exception):
    """Base of every error the detector raises on purpose."""


class ConfigError(DetectorError):
    """A setting is missing or malformed; raised once, at start-up."""
