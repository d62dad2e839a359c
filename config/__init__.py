"""Settings and the tier catalog, as data read once."""

from config.settings import Settings, get_settings
from config.tiers import Catalog, Tier, get_catalog

__all__ = ["Catalog", "Settings", "Tier", "get_catalog", "get_settings"]
