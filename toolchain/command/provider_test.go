package main

// The command provider's contract, from upstream pulumi-command 1.2.1's
// documented behaviour (schema descriptions and provider code): which inputs
// update in place and which replace, which command each operation runs,
// stdin, environment, addPreviousOutputInEnv, logging, dial retries and the
// host key. Remote cases run against the in-process SSH server of
// sshserver_test.go.

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/structpb"
)

const urn = "urn:pulumi:test::p::command:remote:Command::step"

// logs collects what the provider logs.
type logs struct {
	mu    sync.Mutex
	lines []string
}

func (l *logs) log(_ context.Context, _, line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
}

func (l *logs) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string{}, l.lines...)
}

func newProvider() (*commandProvider, *logs) {
	l := &logs{}
	return &commandProvider{log: l.log}, l
}

func props(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *testServer) conn(extra map[string]any) map[string]any {
	host, port, _ := strings.Cut(s.addr, ":")
	c := map[string]any{"host": host, "port": mustAtoi(port), "user": "root",
		"privateKey": string(s.clientKey), "dialErrorLimit": 0, "perDialTimeout": 5}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

func mustAtoi(s string) float64 {
	n := 0
	for _, r := range s {
		n = n*10 + int(r-'0')
	}
	return float64(n)
}

func create(t *testing.T, p *commandProvider, typ string, in map[string]any) (*pulumirpc.CreateResponse, error) {
	t.Helper()
	return p.Create(context.Background(), &pulumirpc.CreateRequest{Urn: urn, Type: typ, Properties: props(t, in)})
}

func mustCreate(t *testing.T, p *commandProvider, typ string, in map[string]any) *structpb.Struct {
	t.Helper()
	r, err := create(t, p, typ, in)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return r.Properties
}

func update(t *testing.T, p *commandProvider, typ string, olds *structpb.Struct, news map[string]any) (*structpb.Struct, error) {
	t.Helper()
	r, err := p.Update(context.Background(), &pulumirpc.UpdateRequest{Urn: urn, Type: typ, Olds: olds, News: props(t, news)})
	if err != nil {
		return nil, err
	}
	return r.Properties, nil
}

func textAsset(text string) map[string]any {
	return map[string]any{sigKey: assetSig, "text": text, "hash": text}
}

func TestDiffReplacesOnTriggersOnlyAndUpdatesEverythingElse(t *testing.T) {
	p, _ := newProvider()
	cases := []struct {
		typ      string
		key      string
		old, new any
		replace  bool
	}{
		{localCommand, "triggers", []any{"a"}, []any{"b"}, true},
		{remoteCommand, "triggers", []any{"a"}, []any{"b"}, true},
		{remoteCopy, "triggers", []any{"a"}, []any{"b"}, true},
		{localCommand, "create", "echo a", "echo b", false},
		{localCommand, "stdin", "a", "b", false},
		{localCommand, "environment", map[string]any{"A": "1"}, map[string]any{"A": "2"}, false},
		{localCommand, "dir", "/a", "/b", false},
		{localCommand, "interpreter", []any{"/bin/sh", "-c"}, []any{"/bin/bash", "-c"}, false},
		{remoteCommand, "create", "echo a", "echo b", false},
		{remoteCommand, "update", "echo a", "echo b", false},
		{remoteCommand, "delete", "echo a", "echo b", false},
		{remoteCommand, "stdin", "a", "b", false},
		{remoteCommand, "connection", map[string]any{"host": "a"}, map[string]any{"host": "b"}, false},
		{remoteCommand, "logging", "stdout", "none", false},
		{remoteCommand, "addPreviousOutputInEnv", true, false, false},
		// upstream updates a copy in place when its source or destination changes
		{remoteCopy, "source", textAsset("a"), textAsset("b"), false},
		{remoteCopy, "remotePath", "/tmp/a", "/tmp/b", false},
		{remoteCopy, "connection", map[string]any{"host": "a"}, map[string]any{"host": "b"}, false},
	}
	for _, c := range cases {
		t.Run(c.typ+"/"+c.key, func(t *testing.T) {
			r, err := p.Diff(context.Background(), &pulumirpc.DiffRequest{Type: c.typ,
				OldInputs: props(t, map[string]any{c.key: c.old}), News: props(t, map[string]any{c.key: c.new})})
			if err != nil {
				t.Fatal(err)
			}
			if r.Changes != pulumirpc.DiffResponse_DIFF_SOME || !slices.Contains(r.Diffs, c.key) {
				t.Fatalf("a %s change is not a diff: %v", c.key, r)
			}
			if got := slices.Contains(r.Replaces, c.key); got != c.replace {
				t.Fatalf("%s change: replace=%v, upstream replaces=%v", c.key, got, c.replace)
			}
			want := pulumirpc.PropertyDiff_UPDATE
			if c.replace {
				want = pulumirpc.PropertyDiff_UPDATE_REPLACE
			}
			if r.DetailedDiff[c.key].Kind != want {
				t.Fatalf("%s: detailed kind %v, want %v", c.key, r.DetailedDiff[c.key].Kind, want)
			}
		})
	}
	same := props(t, map[string]any{"create": "echo a", "triggers": []any{"x"}})
	r, err := p.Diff(context.Background(), &pulumirpc.DiffRequest{Type: localCommand, OldInputs: same, News: same})
	if err != nil || r.Changes != pulumirpc.DiffResponse_DIFF_NONE {
		t.Fatalf("unchanged inputs: %v %v", r, err)
	}
	unknown := props(t, map[string]any{"create": plugin.UnknownStringValue})
	r, _ = p.Diff(context.Background(), &pulumirpc.DiffRequest{Type: localCommand, OldInputs: same, News: unknown})
	if !slices.Contains(r.Diffs, "create") {
		t.Fatalf("an unknown create is not a diff: %v", r)
	}
}

func TestLocalCreateUpdateDeleteRunTheirCommands(t *testing.T) {
	p, _ := newProvider()
	f := filepath.Join(t.TempDir(), "ops")
	in := map[string]any{"create": "echo create >> " + f + "; echo made", "delete": "echo delete >> " + f,
		"update": "echo update >> " + f + "; echo changed"}
	st := mustCreate(t, p, localCommand, in)
	if got := str(st, "stdout"); got != "made" {
		t.Fatalf("create stdout %q, want %q (trailing newline trimmed)", got, "made")
	}
	st, err := update(t, p, localCommand, st, in)
	if err != nil || str(st, "stdout") != "changed" {
		t.Fatalf("update: %v %v", st, err)
	}
	noUpdate := map[string]any{"create": "echo create >> " + f + "; echo again", "delete": in["delete"]}
	st, err = update(t, p, localCommand, st, noUpdate)
	if err != nil || str(st, "stdout") != "again" {
		t.Fatalf("update without `update` must run create again: %v %v", st, err)
	}
	if _, err := p.Delete(context.Background(), &pulumirpc.DeleteRequest{Urn: urn, Type: localCommand,
		Properties: st, OldInputs: props(t, noUpdate)}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(f)
	if got, want := string(b), "create\nupdate\ncreate\ndelete\n"; got != want {
		t.Fatalf("commands ran %q, want %q", got, want)
	}
	// preview runs nothing and leaves stdout unknown
	r, err := p.Create(context.Background(), &pulumirpc.CreateRequest{Type: localCommand, Preview: true,
		Properties: props(t, map[string]any{"create": "echo x >> " + f})})
	if err != nil || str(r.Properties, "stdout") != plugin.UnknownStringValue {
		t.Fatalf("preview: %v %v", r, err)
	}
	if b2, _ := os.ReadFile(f); string(b2) != string(b) {
		t.Fatal("preview ran the create command")
	}
}

func TestRemoteCreateUpdateDeleteRunTheirCommands(t *testing.T) {
	srv := startServer(t)
	p, _ := newProvider()
	in := map[string]any{"connection": srv.conn(nil), "create": "echo c", "update": "echo u", "delete": "echo d"}
	st := mustCreate(t, p, remoteCommand, in)
	if str(st, "stdout") != "c" {
		t.Fatalf("stdout %q", str(st, "stdout"))
	}
	st, err := update(t, p, remoteCommand, st, in)
	if err != nil || str(st, "stdout") != "u" {
		t.Fatalf("update: %v %v", st, err)
	}
	if _, err := p.Delete(context.Background(), &pulumirpc.DeleteRequest{Urn: urn, Type: remoteCommand,
		Properties: st, OldInputs: props(t, in)}); err != nil {
		t.Fatal(err)
	}
	ran := srv.ran()
	for i, want := range []string{"echo c", "echo u", "echo d"} {
		if i >= len(ran) || !strings.HasSuffix(ran[i], want) {
			t.Fatalf("server ran %q, want create, update, delete", ran)
		}
	}
	if _, err := create(t, p, remoteCommand, map[string]any{"connection": srv.conn(nil), "create": "exit 3"}); err == nil ||
		!strings.Contains(err.Error(), "status 3") {
		t.Fatalf("a failing command must fail create: %v", err)
	}
}

func TestStdinReachesTheCommand(t *testing.T) {
	srv := startServer(t)
	p, _ := newProvider()
	stdin := "line one\n$HOME 'q' \"d\" 中文 {x}\n"
	for _, typ := range []string{localCommand, remoteCommand} {
		st := mustCreate(t, p, typ, map[string]any{"connection": srv.conn(nil), "create": "cat", "stdin": stdin})
		if got := str(st, "stdout"); got != strings.TrimSuffix(stdin, "\n") {
			t.Fatalf("%s: stdout %q, want stdin back", typ, got)
		}
	}
}

func TestEnvironmentReachesTheCommand(t *testing.T) {
	srv := startServer(t)
	p, _ := newProvider()
	hostile := `it's $HOME "q" ; echo no 中文 {x}`
	for _, typ := range []string{localCommand, remoteCommand} {
		st := mustCreate(t, p, typ, map[string]any{"connection": srv.conn(nil), "create": `printf '%s|%s' "$A" "$B"`,
			"environment": map[string]any{"A": hostile, "B": "2"}})
		if got := str(st, "stdout"); got != hostile+"|2" {
			t.Fatalf("%s: got %q", typ, got)
		}
	}
}

func TestAddPreviousOutputInEnv(t *testing.T) {
	srv := startServer(t)
	p, _ := newProvider()
	for _, typ := range []string{localCommand, remoteCommand} {
		in := map[string]any{"connection": srv.conn(nil), "create": `echo "first"`,
			"update": `echo "prev=$PULUMI_COMMAND_STDOUT"`}
		st := mustCreate(t, p, typ, in)
		st2, err := update(t, p, typ, st, in)
		if err != nil || str(st2, "stdout") != "prev=first" {
			t.Fatalf("%s: update must see the previous stdout: %v %v", typ, st2, err)
		}
		in["addPreviousOutputInEnv"] = false
		st3, err := update(t, p, typ, st, in)
		if err != nil || str(st3, "stdout") != "prev=" {
			t.Fatalf("%s: addPreviousOutputInEnv=false must hide it: %v %v", typ, st3, err)
		}
	}
}

func TestLoggingModes(t *testing.T) {
	srv := startServer(t)
	cmd := "echo out1; echo err1 >&2; printf out2"
	cases := map[string][]string{
		"":                {"out1", "out2", "err1"},
		"stdoutAndStderr": {"out1", "out2", "err1"},
		"stdout":          {"out1", "out2"},
		"stderr":          {"err1"},
		"none":            nil,
	}
	for mode, want := range cases {
		for _, typ := range []string{localCommand, remoteCommand} {
			p, l := newProvider()
			in := map[string]any{"connection": srv.conn(nil), "create": cmd}
			if mode != "" {
				in["logging"] = mode
			}
			st := mustCreate(t, p, typ, in)
			got := l.all()
			slices.Sort(got)
			w := slices.Clone(want)
			slices.Sort(w)
			if !slices.Equal(got, w) {
				t.Fatalf("%s logging=%q: logged %q, want %q", typ, mode, got, w)
			}
			if str(st, "stdout") != "out1\nout2" || str(st, "stderr") != "err1" {
				t.Fatalf("%s logging=%q: outputs must not depend on logging: %v", typ, mode, st)
			}
		}
	}
	p, _ := newProvider()
	r, _ := p.Check(context.Background(), &pulumirpc.CheckRequest{Type: localCommand,
		News: props(t, map[string]any{"logging": "loud"})})
	if len(r.Failures) != 1 || r.Failures[0].Property != "logging" {
		t.Fatalf("an invalid logging mode must fail check naming it: %v", r.Failures)
	}
}

func TestSecretsAreNotEchoed(t *testing.T) {
	srv := startServer(t)
	p, l := newProvider()
	// The core "s3cr3t" is what is searched for, so a quoted or escaped echo is caught too.
	secret := "s3cr3t-'$x'-中"
	in := map[string]any{"connection": srv.conn(map[string]any{"password": secret}),
		"create": "read -r x; echo work$((40+2)); exit 4",
		"stdin":  secret + "\n", "environment": map[string]any{"TOKEN": secret}}
	_, err := create(t, p, remoteCommand, in)
	if err == nil {
		t.Fatal("the command must fail")
	}
	for _, where := range append([]string{err.Error()}, l.all()...) {
		if strings.Contains(where, "s3cr3t") {
			t.Fatalf("secret echoed: %q", where)
		}
	}
	if !strings.Contains(err.Error(), "work42") {
		t.Fatalf("the error must carry the command's own output: %v", err)
	}
}

func TestDialErrorLimit(t *testing.T) {
	srv := startServer(t)
	srv.failFirst = 2
	p, _ := newProvider()
	// two failed dials allowed: the third connects
	st := mustCreate(t, p, remoteCommand, map[string]any{"connection": srv.conn(map[string]any{"dialErrorLimit": 2}),
		"create": "echo ok"})
	if str(st, "stdout") != "ok" || srv.dialCount() != 3 {
		t.Fatalf("stdout %q after %d dials, want ok after 3", str(st, "stdout"), srv.dialCount())
	}
	srv2 := startServer(t)
	srv2.failFirst = 5
	_, err := create(t, p, remoteCommand, map[string]any{"connection": srv2.conn(map[string]any{"dialErrorLimit": 1}),
		"create": "echo ok"})
	if err == nil || !strings.Contains(err.Error(), "after 2 failed attempts") || srv2.dialCount() != 2 {
		t.Fatalf("dialErrorLimit 1: %v after %d dials, want a failure after 2", err, srv2.dialCount())
	}
	if len(srv2.ran()) != 0 {
		t.Fatal("a command ran")
	}
}

func TestPerDialTimeout(t *testing.T) {
	// A listener that accepts and never speaks SSH: only the per-dial timeout ends the dial.
	ln := listenSilent(t)
	p, _ := newProvider()
	host, port, _ := strings.Cut(ln, ":")
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := create(t, p, remoteCommand, map[string]any{"create": "true", "connection": map[string]any{
			"host": host, "port": mustAtoi(port), "password": "x", "dialErrorLimit": 0, "perDialTimeout": 1}})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || time.Since(start) > 4*time.Second {
			t.Fatalf("perDialTimeout 1: %v after %v", err, time.Since(start))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("perDialTimeout 1: the dial still hangs after 10 s (the handshake is not bounded)")
	}
}

func TestHostKeyPinning(t *testing.T) {
	srv := startServer(t)
	p, _ := newProvider()
	st := mustCreate(t, p, remoteCommand, map[string]any{
		"connection": srv.conn(map[string]any{"hostKey": srv.hostKeyLine()}), "create": "echo pinned"})
	if str(st, "stdout") != "pinned" {
		t.Fatalf("matching host key: %v", st)
	}
	before, dials := len(srv.ran()), srv.dialCount()
	other := strings.TrimSpace(string(marshalAuthorized(newKey(t))))
	for _, typ := range []string{remoteCommand, remoteCopy} {
		_, err := create(t, p, typ, map[string]any{"connection": srv.conn(map[string]any{"hostKey": other, "dialErrorLimit": 3}),
			"create": "echo must-not-run", "source": textAsset("x"), "remotePath": filepath.Join(t.TempDir(), "f")})
		if err == nil || !strings.Contains(err.Error(), "host key mismatch for "+srv.addr) {
			t.Fatalf("%s: a different host key must fail naming the host: %v", typ, err)
		}
	}
	if len(srv.ran()) != before {
		t.Fatalf("a command ran against a mismatching host: %q", srv.ran()[before:])
	}
	if srv.dialCount() != dials+2 {
		t.Fatalf("a mismatch is not transient and must not be retried: %d dials for 2 steps", srv.dialCount()-dials)
	}
	_, err := create(t, p, remoteCommand, map[string]any{"connection": srv.conn(map[string]any{"hostKey": "not a key"}),
		"create": "true"})
	if err == nil || !strings.Contains(err.Error(), "connection.hostKey of 127.0.0.1") {
		t.Fatalf("an unparsable hostKey must fail naming the host: %v", err)
	}
}

func TestCopyToRemoteFileAndTextAssets(t *testing.T) {
	srv := startServer(t)
	p, _ := newProvider()
	local := filepath.Join(t.TempDir(), "local.sh")
	content := "#!/bin/sh\necho 'hi $x' 中\n"
	if err := os.WriteFile(local, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "new dir", "copy.sh")
	fileAsset := map[string]any{sigKey: assetSig, "path": local, "hash": "h1"}
	mustCreate(t, p, remoteCopy, map[string]any{"connection": srv.conn(nil), "source": fileAsset, "remotePath": dest})
	if b, err := os.ReadFile(dest); err != nil || string(b) != content {
		t.Fatalf("file asset copy: %q %v", b, err)
	}
	textDest := filepath.Join(t.TempDir(), "text")
	mustCreate(t, p, remoteCopy, map[string]any{"connection": srv.conn(nil), "source": textAsset("t"), "remotePath": textDest})
	if b, _ := os.ReadFile(textDest); string(b) != "t" {
		t.Fatalf("text asset copy: %q", b)
	}
	_, err := create(t, p, remoteCopy, map[string]any{"connection": srv.conn(nil), "remotePath": textDest,
		"source": map[string]any{sigKey: archiveSig, "path": local}})
	if err == nil || !strings.Contains(err.Error(), "archives are not supported") {
		t.Fatalf("an archive must be refused: %v", err)
	}
}

func TestCopyToRemoteUpdatesInPlace(t *testing.T) {
	srv := startServer(t)
	p, _ := newProvider()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	st := mustCreate(t, p, remoteCopy, map[string]any{"connection": srv.conn(nil), "source": textAsset("one"), "remotePath": a})
	// a new source: copied again by update
	st, err := update(t, p, remoteCopy, st, map[string]any{"connection": srv.conn(nil), "source": textAsset("two"), "remotePath": a})
	if got, _ := os.ReadFile(a); err != nil || string(got) != "two" {
		t.Fatalf("source change: %q %v", got, err)
	}
	// a new destination: copied there by update
	st, err = update(t, p, remoteCopy, st, map[string]any{"connection": srv.conn(nil), "source": textAsset("two"), "remotePath": b})
	if got, _ := os.ReadFile(b); err != nil || string(got) != "two" {
		t.Fatalf("remotePath change: %q %v", got, err)
	}
	// only the connection changed: nothing to copy (like upstream)
	n := len(srv.ran())
	if _, err := update(t, p, remoteCopy, st, map[string]any{"connection": srv.conn(map[string]any{"perDialTimeout": 7}),
		"source": textAsset("two"), "remotePath": b}); err != nil {
		t.Fatal(err)
	}
	if len(srv.ran()) != n {
		t.Fatalf("a connection-only change copied again: %q", srv.ran()[n:])
	}
}
