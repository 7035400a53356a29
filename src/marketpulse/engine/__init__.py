"""Engines run the stage functions: ``local`` (in-process micro-batches) now, ``spark`` later."""
