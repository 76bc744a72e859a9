package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"reflect"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

const (
	localCommand  = "command:local:Command"
	remoteCommand = "command:remote:Command"
	remoteCopy    = "command:remote:CopyToRemote"
)

// Inputs whose change runs the update (or create) command again: every input
// but triggers, as upstream's schema (only triggers carry replaceOnChanges).
var updateKeys = map[string][]string{
	localCommand: {"create", "update", "delete", "dir", "environment", "interpreter", "stdin",
		"logging", "addPreviousOutputInEnv", "assetPaths", "archivePaths"},
	remoteCommand: {"connection", "create", "update", "delete", "environment", "stdin",
		"logging", "addPreviousOutputInEnv"},
	remoteCopy: {"connection", "source", "remotePath"},
}

// Inputs whose change replaces the resource.
var replaceKeys = map[string][]string{
	localCommand:  {"triggers"},
	remoteCommand: {"triggers"},
	remoteCopy:    {"triggers"},
}

// commandProvider is the gRPC resource provider; log receives each output line of a
// running command (see run.go).
type commandProvider struct {
	pulumirpc.UnimplementedResourceProviderServer
	log logFunc
}

func (p *commandProvider) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

func (p *commandProvider) CheckConfig(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	return &pulumirpc.CheckResponse{Inputs: req.News}, nil
}

func (p *commandProvider) DiffConfig(context.Context, *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}, nil
}

func (p *commandProvider) Configure(context.Context, *pulumirpc.ConfigureRequest) (*pulumirpc.ConfigureResponse, error) {
	// AcceptSecrets=false: the engine strips secret markers on the way in and
	// re-applies them to outputs that mirror secret inputs.
	return &pulumirpc.ConfigureResponse{SupportsPreview: true}, nil
}

func (p *commandProvider) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

func checkType(t string) error {
	if _, ok := updateKeys[t]; !ok {
		return status.Errorf(codes.Unimplemented, "resource type %q is not implemented by this command provider", t)
	}
	return nil
}

func (p *commandProvider) Check(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	if err := checkType(req.Type); err != nil {
		return nil, err
	}
	var failures []*pulumirpc.CheckFailure
	required := map[string][]string{remoteCommand: {"connection"}, remoteCopy: {"connection", "source", "remotePath"}}
	for _, k := range required[req.Type] {
		if v := field(req.News, k); v == nil || valueOf(v) == nil {
			failures = append(failures, &pulumirpc.CheckFailure{Property: k, Reason: k + " is required"})
		}
	}
	if l := field(req.News, "logging"); l != nil && !isUnknown(l) && valueOf(l) != nil {
		if _, ok := loggingModes[l.GetStringValue()]; !ok {
			failures = append(failures, &pulumirpc.CheckFailure{Property: "logging",
				Reason: "logging must be one of stdout, stderr, stdoutAndStderr, none"})
		}
	}
	return &pulumirpc.CheckResponse{Inputs: req.News, Failures: failures}, nil
}

func isUnknown(v *structpb.Value) bool {
	return v != nil && v.GetStringValue() == plugin.UnknownStringValue
}

func field(s *structpb.Struct, k string) *structpb.Value {
	if s == nil {
		return nil
	}
	return s.Fields[k]
}

func valueOf(v *structpb.Value) any {
	if v == nil {
		return nil
	}
	if _, ok := v.Kind.(*structpb.Value_NullValue); ok {
		return nil
	}
	return v.AsInterface()
}

func str(s *structpb.Struct, k string) string { return field(s, k).GetStringValue() }

func changed(olds, news *structpb.Struct, k string) bool {
	n := field(news, k)
	return isUnknown(n) || !reflect.DeepEqual(valueOf(field(olds, k)), valueOf(n))
}

func (p *commandProvider) Diff(_ context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	if err := checkType(req.Type); err != nil {
		return nil, err
	}
	olds := req.OldInputs
	if olds == nil {
		olds = req.Olds
	}
	var diffs, replaces []string
	detailed := map[string]*pulumirpc.PropertyDiff{}
	for _, k := range replaceKeys[req.Type] {
		if changed(olds, req.News, k) {
			diffs, replaces = append(diffs, k), append(replaces, k)
			detailed[k] = &pulumirpc.PropertyDiff{Kind: pulumirpc.PropertyDiff_UPDATE_REPLACE, InputDiff: true}
		}
	}
	for _, k := range updateKeys[req.Type] {
		if changed(olds, req.News, k) {
			diffs = append(diffs, k)
			detailed[k] = &pulumirpc.PropertyDiff{Kind: pulumirpc.PropertyDiff_UPDATE, InputDiff: true}
		}
	}
	changes := pulumirpc.DiffResponse_DIFF_NONE
	if len(diffs) > 0 {
		changes = pulumirpc.DiffResponse_DIFF_SOME
	}
	return &pulumirpc.DiffResponse{Changes: changes, Diffs: diffs, Replaces: replaces,
		DetailedDiff: detailed, HasDetailedDiff: true}, nil
}

func (p *commandProvider) run(ctx context.Context, urn, typ, command string, inputs, prev *structpb.Struct) (string, string, error) {
	out := newOutput(ctx, p.log, urn, field(inputs, "logging").GetStringValue())
	env := environment(inputs, prev)
	var err error
	if typ == localCommand {
		err = runLocal(ctx, command, inputs, env, out)
	} else {
		err = runRemote(ctx, command, inputs, env, out)
	}
	return out.result(command, err)
}

func outputs(inputs *structpb.Struct, stdout, stderr string, preview bool) *structpb.Struct {
	out := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for k, v := range inputs.GetFields() {
		out.Fields[k] = v
	}
	if preview {
		stdout, stderr = plugin.UnknownStringValue, plugin.UnknownStringValue
	}
	out.Fields["stdout"] = structpb.NewStringValue(stdout)
	out.Fields["stderr"] = structpb.NewStringValue(stderr)
	return out
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error (Go >= 1.24)
	return hex.EncodeToString(b)
}

func (p *commandProvider) Create(ctx context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	if err := checkType(req.Type); err != nil {
		return nil, err
	}
	if req.Type == remoteCopy {
		if !req.Preview {
			if err := copyToRemote(ctx, req.Properties); err != nil {
				return nil, err
			}
		}
		return &pulumirpc.CreateResponse{Id: newID(), Properties: req.Properties}, nil
	}
	if req.Preview {
		return &pulumirpc.CreateResponse{Properties: outputs(req.Properties, "", "", true)}, nil
	}
	var stdout, stderr string
	if c := str(req.Properties, "create"); c != "" {
		var err error
		stdout, stderr, err = p.run(ctx, req.Urn, req.Type, c, req.Properties, nil)
		if err != nil {
			return nil, err
		}
	}
	return &pulumirpc.CreateResponse{Id: newID(), Properties: outputs(req.Properties, stdout, stderr, false)}, nil
}

func (p *commandProvider) Update(ctx context.Context, req *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	if err := checkType(req.Type); err != nil {
		return nil, err
	}
	if req.Type == remoteCopy {
		// Like upstream: copy again only when the asset or the destination changed.
		if !req.Preview && (changed(req.Olds, req.News, "source") || changed(req.Olds, req.News, "remotePath")) {
			if err := copyToRemote(ctx, req.News); err != nil {
				return nil, err
			}
		}
		return &pulumirpc.UpdateResponse{Properties: req.News}, nil
	}
	if req.Preview {
		return &pulumirpc.UpdateResponse{Properties: outputs(req.News, "", "", true)}, nil
	}
	c := str(req.News, "update")
	if c == "" {
		c = str(req.News, "create")
	}
	stdout, stderr := str(req.Olds, "stdout"), str(req.Olds, "stderr")
	if c != "" {
		var err error
		stdout, stderr, err = p.run(ctx, req.Urn, req.Type, c, req.News, req.Olds)
		if err != nil {
			return nil, err
		}
	}
	return &pulumirpc.UpdateResponse{Properties: outputs(req.News, stdout, stderr, false)}, nil
}

func (p *commandProvider) Delete(ctx context.Context, req *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	if err := checkType(req.Type); err != nil {
		return nil, err
	}
	if req.Type == remoteCopy {
		return &emptypb.Empty{}, nil // like upstream: the copied file stays
	}
	inputs := req.OldInputs
	if inputs == nil || len(inputs.Fields) == 0 {
		inputs = req.Properties
	}
	if c := str(inputs, "delete"); c != "" {
		if _, _, err := p.run(ctx, req.Urn, req.Type, c, inputs, req.Properties); err != nil {
			return nil, err
		}
	}
	return &emptypb.Empty{}, nil
}

// Read (refresh) keeps the recorded state: a command has nothing to read back.
func (p *commandProvider) Read(_ context.Context, req *pulumirpc.ReadRequest) (*pulumirpc.ReadResponse, error) {
	return &pulumirpc.ReadResponse{Id: req.Id, Properties: req.Properties, Inputs: req.Inputs}, nil
}
