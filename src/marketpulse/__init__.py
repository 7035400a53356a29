"""MarketPulse: near-real-time stock market analysis (prices + talk → one signal per symbol)."""

__version__ = "0.1.0"
