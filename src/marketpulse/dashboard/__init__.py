"""The live dashboard: a Streamlit page (``app.py``) that reads the REST API only, through ``client.py``.

``pip install 'marketpulse[dashboard]'``; start it with ``marketpulse dashboard`` (``cli.py``) or
:func:`marketpulse.dashboard.launch.start_dashboard`. This package's ``__init__`` imports nothing optional.
"""

from __future__ import annotations

API_URL_ENV = "MARKETPULSE_API_URL"
API_KEY_ENV = "MARKETPULSE_API_KEY"
DEFAULT_API_URL = "http://127.0.0.1:8000"

__all__ = ["API_KEY_ENV", "API_URL_ENV", "DEFAULT_API_URL"]
