"""Feature engineering: incremental technical indicators and the stage functions built on them."""
