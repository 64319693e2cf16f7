"""The DuckDB store: migrations, batched writes, stats queries."""
from stores.connection import StoreError, open_database
from stores.store import BatchRows, Store

__all__ = ["BatchRows", "Store", "StoreError", "open_database"]
