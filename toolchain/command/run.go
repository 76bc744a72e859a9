package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	"google.golang.org/protobuf/types/known/structpb"
)

// logFunc shows one output line of a running command for resource urn.
type logFunc func(ctx context.Context, urn, line string)

// engineLog sends lines as status messages, as upstream's LogStatus does:
// they show while the step runs and are not kept in the update's output. A
// line the engine does not take is reported on the provider's stderr (which
// the engine keeps), never by failing the command.
func engineLog(host *provider.HostClient) logFunc {
	return func(ctx context.Context, urn, line string) {
		if err := host.LogStatus(ctx, diag.Info, resource.URN(urn), line); err != nil {
			fmt.Fprintf(os.Stderr, "command provider: logging to the engine: %v\n", err)
		}
	}
}

// loggingModes maps upstream's `logging` values to (log stdout, log stderr).
var loggingModes = map[string][2]bool{
	"":                {true, true}, // upstream's default: stdoutAndStderr
	"stdoutAndStderr": {true, true},
	"stdout":          {true, false},
	"stderr":          {false, true},
	"none":            {false, false},
}

// output collects a command's stdout and stderr and logs their lines as they
// arrive, per the resource's logging mode.
type output struct {
	stdout, stderr, both bytes.Buffer
	mu                   sync.Mutex
	outW, errW           io.Writer
	lines                []*lineWriter
}

func newOutput(ctx context.Context, log logFunc, urn, mode string) *output {
	o := &output{}
	m := loggingModes[mode]
	o.outW = o.writer(&o.stdout, m[0], ctx, log, urn)
	o.errW = o.writer(&o.stderr, m[1], ctx, log, urn)
	return o
}

func (o *output) writer(buf *bytes.Buffer, logIt bool, ctx context.Context, log logFunc, urn string) io.Writer {
	ws := []io.Writer{buf, lockedWriter{&o.mu, &o.both}}
	if logIt {
		lw := &lineWriter{emit: func(l string) { log(ctx, urn, l) }}
		o.lines = append(o.lines, lw)
		ws = append(ws, lw)
	}
	return io.MultiWriter(ws...)
}

// result ends the logging and returns stdout and stderr without their final
// newline (as upstream); a failed command's error carries its output.
func (o *output) result(command string, err error) (string, string, error) {
	for _, lw := range o.lines {
		lw.flush()
	}
	if err != nil {
		return "", "", fmt.Errorf("%w: running %q:\n%s", err, command, o.both.String())
	}
	return strings.TrimSuffix(o.stdout.String(), "\n"), strings.TrimSuffix(o.stderr.String(), "\n"), nil
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// lineWriter calls emit once per complete line.
type lineWriter struct {
	buf  []byte
	emit func(string)
}

func (l *lineWriter) Write(b []byte) (int, error) {
	l.buf = append(l.buf, b...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		l.emit(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
}

func (l *lineWriter) flush() {
	if len(l.buf) > 0 {
		l.emit(string(l.buf))
		l.buf = nil
	}
}

// environment is the command's `environment` (sorted) plus, on update and
// delete, the previous stdout/stderr unless addPreviousOutputInEnv is false.
func environment(inputs, prev *structpb.Struct) []string {
	var out []string
	if e := field(inputs, "environment").GetStructValue(); e != nil {
		keys := make([]string, 0, len(e.Fields))
		for k := range e.Fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			out = append(out, k+"="+e.Fields[k].GetStringValue())
		}
	}
	addPrev := true
	if v := field(inputs, "addPreviousOutputInEnv"); v != nil {
		if b, ok := v.Kind.(*structpb.Value_BoolValue); ok {
			addPrev = b.BoolValue
		}
	}
	if prev != nil && addPrev {
		out = append(out, "PULUMI_COMMAND_STDOUT="+str(prev, "stdout"), "PULUMI_COMMAND_STDERR="+str(prev, "stderr"))
	}
	return out
}

func runLocal(ctx context.Context, command string, inputs *structpb.Struct, env []string, out *output) error {
	interp := []string{"/bin/sh", "-c"}
	if l := field(inputs, "interpreter").GetListValue(); l != nil && len(l.Values) > 0 {
		interp = nil
		for _, v := range l.Values {
			interp = append(interp, v.GetStringValue())
		}
	}
	args := append(append([]string{}, interp[1:]...), command)
	cmd := exec.CommandContext(ctx, interp[0], args...)
	cmd.Dir = str(inputs, "dir")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(str(inputs, "stdin"))
	cmd.Stdout, cmd.Stderr = out.outW, out.errW
	return cmd.Run()
}
