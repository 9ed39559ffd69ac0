"""The version, in one place: `reindex.__version__`, the manifest and the package metadata read it."""
__version__ = "0.1.0"
