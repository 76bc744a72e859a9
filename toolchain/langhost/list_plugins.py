"""Print, as JSON, the resource plugins that installed Python packages declare.

Run by the webha language host (main.go embeds this file) with the program's
interpreter: each package shipping a pulumi-plugin.json with "resource": true
is one entry {name, version, server}.
"""
import importlib.metadata as md
import json
import sys

seen, out = set(), []
for d in md.distributions():
    for f in (d.files or []):
        if f.name != "pulumi-plugin.json":
            continue
        try:
            meta = json.loads(f.read_text())
        except (OSError, ValueError) as e:
            print(f"warning: {d.metadata['Name']}: unreadable pulumi-plugin.json: {e}", file=sys.stderr)
            continue
        if not meta.get("resource"):
            continue
        name = meta.get("name") or d.metadata["Name"].replace("pulumi_", "").replace("pulumi-", "")
        ver = meta.get("version") or d.version
        if (name, ver) in seen:
            continue
        seen.add((name, ver))
        out.append({"name": name, "version": ver, "server": meta.get("server", "")})
print(json.dumps(out))
