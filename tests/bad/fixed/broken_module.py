"""The repaired twin of `../broken_module.py`."""

SETTINGS = {"mode": "fast", "speed": 3}
MODE = SETTINGS["speed"]


def tag(event: str) -> str:
    return f"{MODE}:{event}"
