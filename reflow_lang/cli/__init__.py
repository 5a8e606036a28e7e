"""`reflowc`, the command line of reflow: `check`, `compile`, `graph`, `run`, `serve`,
`worker`, `keys`, `stdlib`.

`main(argv) -> int` is the entry point; the commands live in `commands` (those that
only compile), `running` (`run`) and `cluster` (`serve`, `worker`, `keys`); `output`
decides colour and sets up logging.
"""

from __future__ import annotations

from reflow_lang.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
