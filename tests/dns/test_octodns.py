"""octoDNS (PyPI octodns) reads the exported zones with its YamlProvider, strictly (not lenient,
key order enforced), and its own plan shows a VIP change as exactly one changed record."""

import pytest

from tests.dns.conftest import contract_records, export, load_octodns as load, octodns_plan, outputs_json, zones_of

pytestmark = pytest.mark.dns


def as_tuples(zone) -> set[tuple]:
    """(fqdn, type, ttl, values) as octoDNS holds them; a PTR target must be absolute there
    ("shop.itcast.cn."): octoDNS would take a relative one and a provider read it as relative."""
    out = set()
    for r in zone.records:
        values = [str(v) for v in (r.values if hasattr(r, "values") else [r.value])]
        if r._type == "PTR":
            assert all(v.endswith(".") for v in values), (r.fqdn, values)
            values = [v[:-1] for v in values]
        out.add((r.fqdn.rstrip("."), r._type, r.ttl, tuple(sorted(values))))
    return out


@pytest.mark.parametrize("stack", ["dev", "local"])
def test_yaml_provider_accepts_every_record(stack, tmp_path):
    outputs = outputs_json(stack)
    export("octodns", outputs, tmp_path)
    for name in zones_of(outputs):
        zone = load(tmp_path, name)
        assert as_tuples(zone) == contract_records(outputs, name)


def plan_changes(old_outputs, new_outputs, tmp_path):
    """octoDNS's plan from the zones of ``old_outputs`` (deployed) to those of ``new_outputs``."""
    export("octodns", old_outputs, tmp_path / "deployed")
    export("octodns", new_outputs, tmp_path / "desired")
    return octodns_plan(tmp_path / "deployed", tmp_path / "desired", zones_of(new_outputs))


def describe(changes) -> list[tuple]:
    return [(type(c).__name__, c.record.fqdn, c.record._type, c.existing.values, c.new.values) for c in changes]


def test_vip_change_is_exactly_one_changed_record(tmp_path):
    old = outputs_json("local")
    new = outputs_json("local", vrrp={"vip": "10.1.1.200"})
    assert describe(plan_changes(old, new, tmp_path)) == [("Update", "shop.itcast.cn.", "A", ["10.1.1.100"],
                                                             ["10.1.1.200"])]


def test_unchanged_stack_plans_no_change(tmp_path):
    assert plan_changes(outputs_json("dev"), outputs_json("dev"), tmp_path) == []
