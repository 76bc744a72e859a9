"""`webha verify` (the post-condition of `pulumi up`) against real keepalived + nginx in namespaces.

The lab has no PHP or MariaDB: the HTTP check runs with ``check_db=False`` (the report marks the
database part as skipped), so node identity comes from nginx's X-Served-By header here.
"""

from __future__ import annotations

import pytest

from webha.drill import LabCluster
from webha.testbed.lab import CLIENT
from webha.verify import verify, verify_once

pytestmark = pytest.mark.lab


def _failures(report) -> list[str]:
    return [f"{c.name}: {c.detail}" for c in report.failures]


def test_healthy_pair_passes(make_lab):
    lab = make_lab()
    lab.wait_single_holder(10)
    report = verify(lab.cfg, LabCluster(lab), deadline=20, check_db=False)
    assert report.ok and report.holder == "web01", report.text()
    assert "[skipped] database" in report.text()


def test_split_brain_fails_naming_both_holders(make_lab):
    lab = make_lab()
    cluster = LabCluster(lab)
    lab.wait_single_holder(10)
    for node in lab.web_names:
        cluster.block_vrrp(node)
    lab.wait(lambda: lab.vip_holders() == ["web01", "web02"], 10, "both nodes to take the VIP")
    report = verify(lab.cfg, cluster, deadline=3, check_db=False)
    assert not report.ok
    assert any(c.name == "holder" and "split brain" in c.detail and "web01, web02" in c.detail
               for c in report.failures), report.text()


@pytest.mark.parametrize("content", [None, "", "SOMETHING"])
def test_missing_or_unknown_state_file_fails(make_lab, content):
    lab = make_lab()
    lab.wait_single_holder(10)
    state = f"{lab.paths('web02').state_dir}/vrrp.state"
    argv = ["rm", "-f", state] if content is None else ["sh", "-c", f'printf %s "$1" >"$2"', "sh", content, state]
    lab.hosts["web02"].run(argv, check=True)
    report = verify(lab.cfg, LabCluster(lab), deadline=2, check_db=False)
    assert not report.ok
    assert "state: web02: state file says unknown, expected BACKUP" in _failures(report), report.text()


def test_backup_not_receiving_adverts_fails(make_lab):
    lab = make_lab()
    cluster = LabCluster(lab)
    lab.wait_single_holder(10)
    cluster.block_vrrp("web02")  # web02 hears nothing from the master
    report = verify_once(lab.cfg, cluster, check_db=False)
    assert any(c.name == "adverts" and c.detail.startswith("web02") and "0 adverts received" in c.detail
               for c in report.failures), report.text()


def test_http_answered_by_another_node_fails(make_lab):
    lab = make_lab()
    lab.wait_single_holder(10)
    # The client's packets for the VIP end up on web02 (as with a stale ARP entry or a bad NAT).
    web02 = str(lab.cfg.host("web02").ip)
    rules = (
        "table ip webha_wrong {\n"
        "  chain output {\n"
        "    type nat hook output priority -100; policy accept;\n"
        f"    ip daddr {lab.cfg.vrrp.vip} tcp dport {lab.cfg.app.http_port} dnat to {web02}\n"
        "  }\n"
        "}\n"
    )
    lab.hosts[CLIENT].run(["nft", "-f", "-"], input=rules, check=True)
    report = verify(lab.cfg, LabCluster(lab), deadline=2, check_db=False)
    assert not report.ok
    assert "http: GET http://10.1.1.100:80/ answered by web02, but the VIP holder is web01" in _failures(report), \
        report.text()


def test_unreadable_node_is_unknown_never_not_holder(make_lab):
    """A node whose addresses cannot be read fails every tool; it is never counted as "no VIP"."""
    import dataclasses

    from webha.splitbrain import detect
    from webha.vip import VipUnreadable, holders

    lab = make_lab()
    lab.wait_single_holder(10)
    with pytest.raises(VipUnreadable, match="web02"):
        holders({n: lab.hosts[n] for n in lab.web_names}, str(lab.cfg.vrrp.vip), "nosuch0")
    cluster = LabCluster(lab)
    cluster.layouts = {n: dataclasses.replace(l, interface="nosuch0") for n, l in cluster.layouts.items()}
    report = detect(cluster, stats=False)
    assert report.unknown == ["web01", "web02"] and report.text().startswith("UNKNOWN"), report.text()
    assert not verify_once(lab.cfg, cluster, check_db=False).ok
