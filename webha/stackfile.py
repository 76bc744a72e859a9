"""Read a ``stacks/Pulumi.<name>.yaml`` file without the Pulumi CLI (lab, drills, tests).

Secrets are never in the stack file (they are ciphertext there, or absent): the caller passes them,
e.g. fake ones in tests. ``overrides`` deep-merges into the ``webha:*`` values, so a test can say
``{"vrrp": {"preempt": True}}`` and still get every check of :func:`components.config.parse_config`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping, Optional

import yaml

from components.config import NAMESPACE, SECRET_KEYS, ConfigError, StackConfig, parse_config

# Good enough for a lab: they satisfy the validators (>= 12 chars; PASS auth <= 8 chars).
FAKE_SECRETS = {"dbPassword": "lab-db-password-0001", "vrrpAuthPass": "labpass1"}


def _merge(base: dict, extra: Mapping) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["vrrp.preempt=true", ...]`` (dotted key, YAML value) -> a nested overrides dict."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{pair!r}: expected KEY=VALUE, e.g. vrrp.advertInt=0.25")
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return out


def read_stack_values(path: str | Path) -> dict[str, Any]:
    """The ``webha:*`` keys of a stack file, prefix removed; encrypted secrets are dropped."""
    doc = yaml.safe_load(Path(path).read_text()) or {}
    raw: dict[str, Any] = {}
    prefix = f"{NAMESPACE}:"
    for key, value in (doc.get("config") or {}).items():
        if not key.startswith(prefix):
            continue
        key = key[len(prefix):]
        if isinstance(value, dict) and "secure" in value:
            continue  # ciphertext: only the Pulumi CLI can read it
        raw[key] = value
    return raw


def secrets_for(raw: Mapping[str, Any], secrets: Mapping[str, str] = FAKE_SECRETS) -> dict[str, str]:
    """``secrets`` less ``vrrpAuthPass`` unless the config uses ``authType: PASS`` (the config
    refuses a password nothing uses)."""
    out = dict(secrets)
    if (raw.get("vrrp") or {}).get("authType", "none") != "PASS":
        out.pop("vrrpAuthPass", None)
    return out


def load_stack_file(
    path: str | Path,
    secrets: Optional[Mapping[str, str]] = None,
    overrides: Optional[Mapping[str, Any]] = None,
) -> StackConfig:
    """Validate a stack file like ``pulumi preview`` would, with ``secrets`` supplied by the caller.

    ``secrets`` defaults to :data:`FAKE_SECRETS`; ``vrrpAuthPass`` is only passed on when the
    (overridden) config uses ``authType: PASS``, since the config refuses it otherwise.
    """
    raw = read_stack_values(path)
    if overrides:
        raw = _merge(raw, overrides)
    secrets = secrets_for(raw, FAKE_SECRETS if secrets is None else secrets)
    for key in SECRET_KEYS:
        if key in secrets:
            raw[key] = secrets[key]
    unknown = set(secrets) - set(SECRET_KEYS)
    if unknown:
        raise ConfigError(f"{NAMESPACE}: unknown secret(s) {', '.join(sorted(unknown))}")
    return parse_config(raw, set(secrets))


# Stand-ins for a config rebuilt without its secrets (``webha verify``): they satisfy the
# validators and are never used to reach anything.
ABSENT_SECRETS = {"dbPassword": "absent-secret-not-used", "vrrpAuthPass": "absent00"}


def config_from_dump(data: Mapping[str, Any]) -> StackConfig:
    """A StackConfig from ``StackConfig.model_dump(mode="json", by_alias=True)`` minus the secrets
    (what the tier check hands ``webha verify``). Secrets in the dump are refused: the checks need
    none, so none should travel."""
    present = [k for k in SECRET_KEYS if k in data]
    if present:
        raise ConfigError(f"{NAMESPACE}: the dump carries secret(s) {', '.join(present)}; leave them out")
    raw = copy.deepcopy(dict(data))
    secrets = dict(ABSENT_SECRETS)
    if (raw.get("vrrp") or {}).get("authType", "none") != "PASS":
        secrets.pop("vrrpAuthPass")
    raw.update(secrets)
    return parse_config(raw, set(secrets))
