"""Butlr sensors."""
