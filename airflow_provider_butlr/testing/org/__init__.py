"""The emulator's seeded organisation: the data model (sites to sensors) and its deterministic generator."""
