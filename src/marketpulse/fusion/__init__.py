"""Fusion: one signal per symbol from the price and sentiment models, and the backtest that judges it."""
