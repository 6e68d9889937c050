"""The on-disk truth: SQLite metadata and content-addressed model files in the data dir."""

from app.store.catalog import NewVersion, Store
from app.store.records import ModelRecord, VersionRecord

__all__ = ["ModelRecord", "NewVersion", "Store", "VersionRecord"]
