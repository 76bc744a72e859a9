"""The one place configs are made: jinja2 templates in ``templates/`` rendered with StrictUndefined.

The Pulumi program, the lab harness and the tests all call :func:`render`, so what is tested is
byte-for-byte what is deployed. A missing variable is an error, never an empty string.
"""

from __future__ import annotations

import hashlib
import shlex
from functools import lru_cache
from pathlib import Path

import jinja2

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["shquote"] = lambda v: shlex.quote(str(v))
    env.filters["phpquote"] = lambda v: "'" + str(v).replace("\\", "\\\\").replace("'", "\\'") + "'"
    env.filters["sqlquote"] = lambda v: "'" + str(v).replace("\\", "\\\\").replace("'", "''") + "'"
    return env


def render(name: str, **context) -> str:
    """Render ``templates/<name>`` with ``context``; raises on any undefined variable."""
    return _env().get_template(name).render(**context)


def template_names() -> list[str]:
    """Every template shipped, so tests can prove none is left unrendered."""
    return sorted(str(p.relative_to(TEMPLATES)) for p in TEMPLATES.rglob("*.j2"))


def digest(text: str) -> str:
    """Short content hash used as a ``triggers`` value: a changed file re-runs its command."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]
