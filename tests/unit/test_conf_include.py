"""The detector compares the VRRP password too, although it now lives in an included file."""

import subprocess

import pytest

from webha.executor import ExecError
from webha.splitbrain import compare_configs, read_conf, summarize_conf

pytestmark = pytest.mark.unit

CONF = """vrrp_instance VI_51 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 1
    authentication {
        auth_type PASS
        include /etc/keepalived/vrrp-auth.conf
    }
    virtual_ipaddress {
        10.1.1.100/24 dev eth0
    }
}
"""


class Files:
    def __init__(self, name, files):
        self.name, self.files = name, files

    def run(self, argv, *, timeout=10, check=False, input=None):
        path = argv[-1]
        if path not in self.files:
            return subprocess.CompletedProcess(argv, 1, "", f"cat: {path}: No such file or directory")
        return subprocess.CompletedProcess(argv, 0, self.files[path], "")


def node(name, password):
    return Files(name, {"/etc/keepalived/keepalived.conf": CONF,
                        "/etc/keepalived/vrrp-auth.conf": f"auth_pass {password}\n"})


def test_included_password_is_compared_by_hash():
    confs = {n: summarize_conf(read_conf(node(n, pw), "/etc/keepalived/keepalived.conf"))
             for n, pw in (("web01", "abc12345"), ("web02", "xyz98765"))}
    bad = [f for f in compare_configs(confs, {"web01": "10.1.1.11", "web02": "10.1.1.13"}) if not f.ok]
    assert any("auth_pass" in f.detail for f in bad), bad
    assert not any("abc12345" in f.detail or "xyz98765" in f.detail for f in bad)


def test_a_missing_include_is_an_error_not_an_empty_password():
    ex = Files("web01", {"/etc/keepalived/keepalived.conf": CONF})
    with pytest.raises(ExecError, match="vrrp-auth.conf"):
        read_conf(ex, "/etc/keepalived/keepalived.conf")
