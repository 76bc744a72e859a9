package main

// The language host's choices that decide which Python runs a program, and
// the plugin list that `pulumi about` and plugin resolution read.

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/structpb"
)

func info(t *testing.T, root string, opts map[string]any) *pulumirpc.ProgramInfo {
	t.Helper()
	s, err := structpb.NewStruct(opts)
	if err != nil {
		t.Fatal(err)
	}
	return &pulumirpc.ProgramInfo{RootDirectory: root, Options: s}
}

func TestInterpreterOrder(t *testing.T) {
	root := t.TempDir()
	active := t.TempDir()
	if err := os.MkdirAll(filepath.Join(active, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(active, "bin", "python"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VIRTUAL_ENV", active)
	t.Setenv("PULUMI_PYTHON_CMD", "/opt/py")
	withVenv := info(t, root, map[string]any{"virtualenv": "venv"})
	if got := python(withVenv); got != "/opt/py" {
		t.Fatalf("PULUMI_PYTHON_CMD first: got %s", got)
	}
	t.Setenv("PULUMI_PYTHON_CMD", "")
	if got, want := python(withVenv), filepath.Join(root, "venv", "bin", "python"); got != want {
		t.Fatalf("then the project's virtualenv (relative to the root): got %s, want %s", got, want)
	}
	if got, want := python(info(t, root, nil)), filepath.Join(active, "bin", "python"); got != want {
		t.Fatalf("then an active VIRTUAL_ENV: got %s, want %s", got, want)
	}
	t.Setenv("VIRTUAL_ENV", "")
	if got := filepath.Base(python(info(t, root, nil))); got != "python3" {
		t.Fatalf("then python3 on PATH: got %s", got)
	}
}

func TestPackagesFromPulumiPluginJSON(t *testing.T) {
	site := t.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(site, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("pulumi_fake/pulumi-plugin.json", `{"resource": true, "name": "fake", "version": "1.2.3"}`)
	write("pulumi_fake-1.2.3.dist-info/METADATA", "Metadata-Version: 2.1\nName: pulumi_fake\nVersion: 1.2.3\n")
	write("pulumi_fake-1.2.3.dist-info/RECORD", "pulumi_fake/pulumi-plugin.json,,\n")
	write("pulumi_lib/pulumi-plugin.json", `{"resource": false}`)
	write("pulumi_lib-0.1.dist-info/METADATA", "Metadata-Version: 2.1\nName: pulumi_lib\nVersion: 0.1\n")
	write("pulumi_lib-0.1.dist-info/RECORD", "pulumi_lib/pulumi-plugin.json,,\n")
	t.Setenv("PULUMI_PYTHON_CMD", "python3")
	t.Setenv("PYTHONPATH", site)
	pkgs, err := (&host{}).packages(context.Background(), info(t, t.TempDir(), nil))
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, p := range pkgs {
		found = append(found, p.Name+"@"+p.Version+"/"+p.Kind)
	}
	want := "fake@v1.2.3/resource"
	ok := false
	for _, f := range found {
		if f == want {
			ok = true
		}
		if f[:4] == "lib@" {
			t.Fatalf("a package without resource: true was listed: %v", found)
		}
	}
	if !ok {
		t.Fatalf("want %s among %v", want, found)
	}
}
