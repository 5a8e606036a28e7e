"""reflow: a stream-processing language compiled to asyncio workers."""

from pathlib import Path

# An install maps the top-level folders `stdlib/` and `grammar/` into this package
# (pyproject.toml). Run from a source checkout instead (`python -m reflow_lang.cli`
# at the repository's root), the package is found there without them; let it look
# beside itself too, so that `reflow_lang.stdlib` and `reflow_lang.grammar` resolve.
_here = Path(__file__).parent
if (
    not (_here / "stdlib").is_dir()
    and (_here.parent / "stdlib" / "__init__.py").is_file()
):
    __path__.append(str(_here.parent))
