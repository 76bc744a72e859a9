// pulumi-language-python (webha stand-in).
//
// A small Python language host written for the webha toolchain because the
// upstream host module is not served by the Go module proxy reachable from the
// build machines. It runs a Pulumi Python program through the
// pulumi-language-python-exec shim that ships with the Python SDK sources.
package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

var version = "0.0.0-dev"

// Exit code the exec shim uses after it already printed an actionable message.
const bailExitCode = 32

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engine string
}

func main() {
	var engine string
	for _, a := range os.Args[1:] {
		if !strings.HasPrefix(a, "-") {
			engine = a // the engine address is the last positional argument
		}
	}
	h := &host{engine: engine}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Init: func(s *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(s, h)
			return nil
		},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "fatal: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		fmt.Fprintf(os.Stderr, "fatal: %v\n", err)
		os.Exit(1)
	}
}

func option(info *pulumirpc.ProgramInfo, key string) string {
	if info == nil || info.Options == nil {
		return ""
	}
	if v, ok := info.Options.Fields[key]; ok {
		return v.GetStringValue()
	}
	return ""
}

func rootDir(info *pulumirpc.ProgramInfo) string {
	if info != nil && info.RootDirectory != "" {
		return info.RootDirectory
	}
	wd, _ := os.Getwd()
	return wd
}

// venvDir is the project's virtualenv option resolved against the project root.
func venvDir(info *pulumirpc.ProgramInfo) string {
	v := option(info, "virtualenv")
	if v == "" {
		return ""
	}
	if !filepath.IsAbs(v) {
		v = filepath.Join(rootDir(info), v)
	}
	return v
}

// python picks the interpreter: PULUMI_PYTHON_CMD, the project's virtualenv
// option, an active VIRTUAL_ENV, then python3 on PATH.
func python(info *pulumirpc.ProgramInfo) string {
	if p := os.Getenv("PULUMI_PYTHON_CMD"); p != "" {
		return p
	}
	if v := venvDir(info); v != "" {
		return filepath.Join(v, "bin", "python")
	}
	if v := os.Getenv("VIRTUAL_ENV"); v != "" {
		if _, err := os.Stat(filepath.Join(v, "bin", "python")); err == nil {
			return filepath.Join(v, "bin", "python")
		}
	}
	if p, err := exec.LookPath("python3"); err == nil {
		return p
	}
	return "python"
}

// pythonEnv puts the chosen virtualenv first on PATH, as activating it would.
func pythonEnv(info *pulumirpc.ProgramInfo) []string {
	env := os.Environ()
	if v := venvDir(info); v != "" {
		env = append(env, "VIRTUAL_ENV="+v, "PATH="+filepath.Join(v, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"))
	}
	return env
}

func execShim() (string, error) {
	const name = "pulumi-language-python-exec"
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return exec.LookPath(name)
}

func (h *host) Handshake(ctx context.Context, req *pulumirpc.LanguageHandshakeRequest) (*pulumirpc.LanguageHandshakeResponse, error) {
	if req.EngineAddress != "" {
		h.engine = req.EngineAddress
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

func (h *host) GetRequiredPlugins(ctx context.Context, req *pulumirpc.GetRequiredPluginsRequest) (*pulumirpc.GetRequiredPluginsResponse, error) {
	pkgs, err := h.packages(ctx, req.Info)
	if err != nil {
		return nil, err
	}
	out := &pulumirpc.GetRequiredPluginsResponse{}
	for _, p := range pkgs {
		out.Plugins = append(out.Plugins, &pulumirpc.PluginDependency{Name: p.Name, Kind: p.Kind, Version: p.Version, Server: p.Server})
	}
	return out, nil
}

func (h *host) GetRequiredPackages(ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest) (*pulumirpc.GetRequiredPackagesResponse, error) {
	pkgs, err := h.packages(ctx, req.Info)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.GetRequiredPackagesResponse{Packages: pkgs}, nil
}

// listPluginsPy lists the resource plugins that installed Python packages
// declare in their pulumi-plugin.json file.
//
//go:embed list_plugins.py
var listPluginsPy string

func (h *host) packages(ctx context.Context, info *pulumirpc.ProgramInfo) ([]*pulumirpc.PackageDependency, error) {
	cmd := exec.CommandContext(ctx, python(info), "-c", listPluginsPy)
	cmd.Env = pythonEnv(info)
	cmd.Dir = rootDir(info)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		// no usable interpreter yet (e.g. before the venv exists): nothing to report
		fmt.Fprintf(os.Stderr, "warning: could not list python plugin packages: %v\n", err)
		return nil, nil
	}
	var found []struct{ Name, Version, Server string }
	if err := json.Unmarshal(out, &found); err != nil {
		return nil, fmt.Errorf("parsing plugin list: %w", err)
	}
	var pkgs []*pulumirpc.PackageDependency
	for _, f := range found {
		v := f.Version
		if v != "" && !strings.HasPrefix(v, "v") {
			v = "v" + v
		}
		pkgs = append(pkgs, &pulumirpc.PackageDependency{Name: f.Name, Kind: "resource", Version: v, Server: f.Server})
	}
	return pkgs, nil
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	shim, err := execShim()
	if err != nil {
		return nil, fmt.Errorf("pulumi-language-python-exec not found next to the language host or on PATH: %w", err)
	}
	program := req.Program
	if req.Info != nil && req.Info.ProgramDirectory != "" {
		program = req.Info.ProgramDirectory
		if req.Info.EntryPoint != "" && req.Info.EntryPoint != "." {
			program = filepath.Join(program, req.Info.EntryPoint)
		}
	}
	engine := h.engine
	args := []string{"-u", shim,
		"--monitor", req.MonitorAddress,
		"--engine", engine,
		"--project", req.Project,
		"--stack", req.Stack,
		"--pwd", req.Pwd,
		"--dry_run", strconv.FormatBool(req.DryRun),
		"--parallel", strconv.Itoa(int(req.Parallel)),
		"--organization", req.Organization,
		"--root_directory", rootDir(req.Info),
		program}
	args = append(args, req.Args...)

	config := req.Config
	if config == nil {
		config = map[string]string{}
	}
	cfg, err := json.Marshal(config)
	if err != nil {
		return nil, err
	}
	secretKeys := req.ConfigSecretKeys
	if secretKeys == nil {
		secretKeys = []string{}
	}
	keys, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, python(req.Info), args...)
	cmd.Dir = req.Pwd
	cmd.Env = append(pythonEnv(req.Info), "PULUMI_CONFIG="+string(cfg), "PULUMI_CONFIG_SECRET_KEYS="+string(keys), "PYTHONUNBUFFERED=1")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ee.ExitCode() == bailExitCode {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program exited with non-zero exit code: %d", ee.ExitCode())}, nil
		}
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

type streamWriter struct {
	send   func(*pulumirpc.InstallDependenciesResponse) error
	stderr bool
}

func (w streamWriter) Write(p []byte) (int, error) {
	b := append([]byte(nil), p...)
	r := &pulumirpc.InstallDependenciesResponse{Stdout: b}
	if w.stderr {
		r = &pulumirpc.InstallDependenciesResponse{Stderr: b}
	}
	return len(p), w.send(r)
}

// InstallDependencies creates the project's virtualenv when it is missing and
// installs requirements.txt into it.
func (h *host) InstallDependencies(req *pulumirpc.InstallDependenciesRequest, srv grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse]) error {
	info := req.Info
	dir := rootDir(info)
	if req.Directory != "" && info == nil {
		dir = req.Directory
	}
	var stdout, stderr io.Writer = streamWriter{send: srv.Send}, streamWriter{send: srv.Send, stderr: true}
	run := func(name string, args ...string) error {
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		cmd.Env = pythonEnv(info)
		cmd.Stdout, cmd.Stderr = stdout, stderr
		return cmd.Run()
	}
	if v := venvDir(info); v != "" {
		if _, err := os.Stat(filepath.Join(v, "bin", "python")); err != nil {
			base, err := exec.LookPath("python3")
			if err != nil {
				return err
			}
			if err := run(base, "-m", "venv", v); err != nil {
				return fmt.Errorf("creating virtualenv %s: %w", v, err)
			}
		}
	}
	req_txt := filepath.Join(dir, "requirements.txt")
	if _, err := os.Stat(req_txt); err != nil {
		return nil
	}
	py := python(info)
	if err := run(py, "-m", "pip", "install", "-r", req_txt); err != nil {
		return fmt.Errorf("pip install -r requirements.txt: %w", err)
	}
	return nil
}

func (h *host) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	py := python(req.Info)
	out, err := exec.CommandContext(ctx, py, "--version").Output()
	if err != nil {
		return nil, err
	}
	v := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "Python "))
	return &pulumirpc.AboutResponse{Executable: py, Version: v}, nil
}

func (h *host) GetProgramDependencies(ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest) (*pulumirpc.GetProgramDependenciesResponse, error) {
	return &pulumirpc.GetProgramDependenciesResponse{}, nil
}

func (h *host) RuntimeOptionsPrompts(context.Context, *pulumirpc.RuntimeOptionsRequest) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}
