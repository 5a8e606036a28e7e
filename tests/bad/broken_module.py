"""A module that fails on import, for E203."""

SETTINGS = {"mode": "fast"}
MODE = SETTINGS["speed"]
