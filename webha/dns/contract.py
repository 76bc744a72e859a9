"""Read a webha.dns/v1 document (the ``dns`` stack output) and refuse anything else.

The contract is the JSON Schema in ``schemas/webha.dns.v1.json``: the program's output is checked
against it by the unit tier, and every exporter input is checked against it here, so an exporter
never writes records from a document it does not understand (another version, a hand edit).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "webha.dns.v1.json"
SCHEMA_ID = "webha.dns/v1"


class ContractError(ValueError):
    """The input is not a webha.dns/v1 document (the message says where)."""


@lru_cache(maxsize=1)
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def validate(doc: Any) -> dict:
    """``doc`` if it is a valid webha.dns/v1 document; else ContractError naming the place.

    TTLs come back as integers: a ``StackReference`` hands every number over as a float (the
    engine's protobuf Struct), 300.0, and JSON Schema counts 300.0 as an integer."""
    if isinstance(doc, dict) and doc.get("schema") not in (None, SCHEMA_ID):
        raise ContractError(f"schema: {doc.get('schema')!r} is not {SCHEMA_ID} (this webha reads {SCHEMA_ID} only)")
    errors = sorted(validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{'/'.join(map(str, e.absolute_path)) or '(document)'}: {e.message}" for e in errors[:10]]
        raise ContractError(f"not a {SCHEMA_ID} document:\n  " + "\n  ".join(lines))
    return {**doc, "zones": [{**z, "records": [{**r, "ttl": int(r["ttl"])} for r in z["records"]]}
                             for z in doc["zones"]]}


def from_stack_outputs(text: str) -> dict:
    """The ``dns`` document from ``pulumi stack output --json`` (or the document itself)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ContractError(f"not JSON ({exc}); expected `pulumi stack output --json`") from None
    if isinstance(data, dict) and "schema" not in data:
        if "dns" not in data:
            raise ContractError("the stack has no `dns` output (deployed before webha.dns/v1? run "
                                "`pulumi up`, then `pulumi stack output --json`)")
        data = data["dns"]
    return validate(data)


def zone_of(doc: dict, name: str | None) -> dict:
    """One zone of the document: ``name``, or the forward zone."""
    if name is None:
        return doc["zones"][0]
    for zone in doc["zones"]:
        if zone["zone"] == name.rstrip("."):
            return zone
    raise ContractError(f"--zone {name}: not in the document (zones: "
                        f"{', '.join(z['zone'] for z in doc['zones'])})")
