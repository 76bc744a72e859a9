"""Run consumers/dns-octodns under Pulumi mocks: its StackReference answers with a given `dns`
output; returns what the program registered (the unit tier reads it; the dns tier runs the
registered command for real)."""

from __future__ import annotations

import importlib.util
import json

import pulumi

from tests.conftest import ROOT

CONSUMER = ROOT / "consumers" / "dns-octodns"


class ConsumerMocks(pulumi.runtime.Mocks):
    def __init__(self, dns_output):
        self.dns_output = dns_output
        self.resources: dict[str, pulumi.runtime.MockResourceArgs] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources[args.typ] = args
        if args.typ == "pulumi:pulumi:StackReference":
            return f"{args.name}-id", {"name": args.name, "outputs": {"dns": self.dns_output}}
        return f"{args.name}-id", {**args.inputs, "stdout": "", "stderr": ""}

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


def run_consumer(dns_output, output_dir: str | None = None, stack="local") -> tuple[ConsumerMocks, dict]:
    """(mocks, {"create", "stdin", "delete", "files"}) as registered by the consumer's build()."""
    config = {"webha-dns-octodns:webhaStack": f"organization/webha/{stack}"}
    if output_dir is not None:
        config["webha-dns-octodns:outputDir"] = output_dir
    pulumi.runtime.set_all_config(config, [])
    mocks = ConsumerMocks(dns_output)
    pulumi.runtime.set_mocks(mocks, project="webha-dns-octodns", stack=stack, preview=False)
    spec = importlib.util.spec_from_file_location("webha_dns_octodns_consumer", CONSUMER / "consumer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        out = module.build()

        got: dict = {}
        keys = ("create", "stdin", "delete", "dir")

        @pulumi.runtime.test
        def settle():
            cmd = out["command"]
            return pulumi.Output.all(*(getattr(cmd, k) for k in keys), out["files"]).apply(
                lambda values: got.update(zip((*keys, "files"), values)))

        settle()
    finally:
        pulumi.runtime.set_all_config({}, [])
    return mocks, {**got, "dns": json.loads(got["stdin"])["dns"]}
