"""A real PowerDNS Authoritative server (Debian pdns-server + pdns-backend-sqlite3) on loopback:
the exported rrsets go in through its HTTP API (PATCH, as a pipeline would send them), are read
back through the API, and are answered over DNS."""

from __future__ import annotations

import json
import secrets
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import pytest

from tests.dns.conftest import contract_records, export, need_tool, outputs_json, zones_of

pytestmark = pytest.mark.dns
SCHEMA = Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PowerDns:
    def __init__(self, tmp: Path):
        server = need_tool("pdns_server", "pdns-server")
        if not SCHEMA.exists():
            pytest.fail(f"{SCHEMA} missing: install the Debian package pdns-backend-sqlite3", pytrace=False)
        db = tmp / "pdns.sqlite3"
        with sqlite3.connect(db) as conn:
            conn.executescript(SCHEMA.read_text())
        (tmp / "pdns.conf").write_text("")  # --config-dir: never /etc/powerdns
        self.key = secrets.token_hex(16)
        self.dns_port, self.api_port = free_port(), free_port()
        self.log = open(tmp / "pdns.log", "w")
        self.proc = subprocess.Popen([
            server, f"--config-dir={tmp}", f"--socket-dir={tmp}", "--guardian=no", "--daemon=no",
            "--disable-syslog=yes", "--launch=gsqlite3", f"--gsqlite3-database={db}",
            "--local-address=127.0.0.1", f"--local-port={self.dns_port}",
            "--api=yes", f"--api-key={self.key}", "--webserver=yes", "--webserver-address=127.0.0.1",
            f"--webserver-port={self.api_port}", "--webserver-allow-from=127.0.0.1/32",
        ], stdout=self.log, stderr=subprocess.STDOUT)
        self.tmp = tmp
        deadline = time.monotonic() + 30
        while True:
            try:
                self.call("GET", "/servers/localhost")
                break
            except (urllib.error.URLError, ConnectionError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    pytest.fail("pdns_server did not answer its API within 30 s:\n"
                                + (tmp / "pdns.log").read_text()[-3000:], pytrace=False)
                time.sleep(0.2)

    def call(self, method: str, path: str, body: dict | None = None):
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}/api/v1{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"X-API-Key": self.key, "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            text = resp.read().decode()
            return resp.status, (json.loads(text) if text else None)

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


@pytest.fixture
def pdns(tmp_path):
    server = PowerDns(tmp_path)
    yield server
    server.close()


def patch_zone(pdns, name: str, body: dict):
    try:
        return pdns.call("PATCH", f"/servers/localhost/zones/{name}.", body)
    except urllib.error.HTTPError as exc:
        pytest.fail(f"PowerDNS refused the rrsets of {name}: {exc.code} {exc.read().decode()}", pytrace=False)


def test_powerdns_takes_the_rrsets_and_serves_them(pdns, tmp_path):
    outputs = outputs_json("dev")
    export("powerdns", outputs, tmp_path / "out")
    for name in zones_of(outputs):
        status, _ = pdns.call("POST", "/servers/localhost/zones",
                              {"name": f"{name}.", "kind": "Native", "nameservers": ["ns1.example.net."]})
        assert status == 201
        body = json.loads((tmp_path / "out" / f"{name}.json").read_text())
        assert patch_zone(pdns, name, body)[0] == 204
        assert patch_zone(pdns, name, body)[0] == 204  # again: REPLACE is idempotent
        _, zone = pdns.call("GET", f"/servers/localhost/zones/{name}.")
        got = set()
        for rr in zone["rrsets"]:
            if rr["type"] in ("SOA", "NS"):
                continue
            values = sorted(c["content"].strip('"') if rr["type"] == "TXT" else c["content"].rstrip(".")
                            for c in rr["records"])
            got.add((rr["name"].rstrip("."), rr["type"], rr["ttl"], tuple(values)))
        assert got == contract_records(outputs, name)
    # Answered over DNS by the server that took them.
    for qname, qtype, want in (("shop.itcast.cn", "A", "10.1.1.100"), ("web02.itcast.cn", "A", "10.1.1.13"),
                               ("100.1.1.10.in-addr.arpa", "PTR", "shop.itcast.cn."),
                               ("_webha-owner.shop.itcast.cn", "TXT",
                                '"heritage=webha,webha/owner=webha/dev,webha/type=A"')):
        answer = dns.query.udp(dns.message.make_query(qname, qtype), "127.0.0.1", port=pdns.dns_port, timeout=5)
        rrs = answer.find_rrset(answer.answer, dns.name.from_text(qname), dns.rdataclass.IN,
                                dns.rdatatype.from_text(qtype))
        assert [r.to_text() for r in rrs] == [want]


@pytest.mark.parametrize("rtype,content", [("A", "10.1.1.999"), ("TXT", "heritage=webha without quotes"),
                                           ("PTR", "shop.itcast.cn extra")])
def test_powerdns_refuses_what_it_cannot_serve(pdns, rtype, content):
    """The server is a real judge: content it could not serve is refused (422)."""
    pdns.call("POST", "/servers/localhost/zones",
              {"name": "itcast.cn.", "kind": "Native", "nameservers": ["ns1.example.net."]})
    bad = {"rrsets": [{"name": "x.itcast.cn.", "type": rtype, "ttl": 60, "changetype": "REPLACE",
                       "records": [{"content": content, "disabled": False}]}]}
    with pytest.raises(urllib.error.HTTPError) as exc:
        pdns.call("PATCH", "/servers/localhost/zones/itcast.cn.", bad)
    assert exc.value.code == 422, exc.value.read()
