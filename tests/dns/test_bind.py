"""named-checkzone (Debian bind9-utils) loads each exported zone, $INCLUDEd from a master file
that holds the zone's own SOA and NS (as an operator's would), and its dump of the loaded zone
holds exactly the contract's records besides those two."""

import subprocess

import dns.zone
import pytest

from tests.dns.conftest import contract_records, export, need_tool, outputs_json, zones_of

pytestmark = pytest.mark.dns

SOA_NS = {"SOA", "NS"}


def check_zone(name, include, tmp_path):
    checkzone = need_tool("named-checkzone", "bind9-utils")
    master = tmp_path / f"{name}.master"
    master.write_text(
        "$TTL 3600\n"
        "@ IN SOA ns1.example.net. hostmaster.example.net. 1 3600 600 86400 60\n"
        "@ IN NS ns1.example.net.\n"
        f"$INCLUDE {include}\n")
    dump = tmp_path / f"{name}.dump"
    # -k fail: names must be valid hostnames where they have to be; -n ignore: no resolver here.
    res = subprocess.run([checkzone, "-k", "fail", "-m", "fail", "-M", "fail", "-S", "fail", "-n", "ignore",
                          "-D", "-o", str(dump), name, str(master)], capture_output=True, text=True, timeout=60)
    return res, dump


@pytest.mark.parametrize("stack", ["dev", "local"])
def test_named_checkzone_accepts_every_zone(stack, tmp_path):
    outputs = outputs_json(stack)
    export("bind", outputs, tmp_path)
    for name in zones_of(outputs):
        res, dump = check_zone(name, tmp_path / f"{name}.zone", tmp_path)
        assert res.returncode == 0 and "OK" in res.stdout, res.stdout + res.stderr
        loaded = dns.zone.from_file(str(dump), origin=name + ".", relativize=False)
        got = set()
        for rname, node in loaded.nodes.items():
            for rds in node.rdatasets:
                rtype = dns.rdatatype.to_text(rds.rdtype)
                if rtype in SOA_NS:
                    continue
                values = sorted(b"".join(r.strings).decode() if rtype == "TXT" else r.to_text().rstrip(".")
                                for r in rds)
                got.add((rname.to_text().rstrip("."), rtype, rds.ttl, tuple(values)))
        assert got == contract_records(outputs, name)


def test_stdout_is_the_forward_zone_and_zone_selects_another(tmp_path):
    outputs = outputs_json("dev")
    text = export("bind", outputs).stdout
    assert text.splitlines()[2] == "$ORIGIN itcast.cn."
    rev = export("bind", outputs, None, "--zone", "1.1.10.in-addr.arpa").stdout
    include = tmp_path / "rev.zone"
    include.write_text(rev)
    res, _ = check_zone("1.1.10.in-addr.arpa", include, tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
