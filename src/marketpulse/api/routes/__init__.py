"""REST routes, thin: market data (``market``), derived views (``signals``), health and stats (``system``)."""
