"""The store: a content-addressed Zarr cache of computed grids (the only Zarr code)."""

from .core import (
           Family,
           Plan,
           ShardReport,
           Store,
           as_spec,
           compute,
           default_store_url,
           plan,
           spec_id,
)
from .layout import FamilyLayout, Window

__all__ = ["Family", "FamilyLayout", "Plan", "ShardReport", "Store", "Window", "as_spec",
           "compute", "default_store_url", "plan", "spec_id"]
