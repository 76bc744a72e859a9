// pulumi-resource-command (webha stand-in).
//
// Implements the subset of the Pulumi "command" package that webha uses,
// command:local:Command, command:remote:Command and command:remote:CopyToRemote
// (file assets), wire-compatible with the pulumi-command 1.2.1 SDKs. It exists
// because the upstream provider module is not served by the Go module proxy
// reachable from webha's build machines; on a normal machine `pulumi plugin
// install resource command 1.2.1` installs the upstream provider instead.
//
// The files: provider.go (the gRPC resource provider: check, diff, CRUD),
// run.go (running a command locally, its environment and log lines), ssh.go
// (dialing with retries and host key pinning, remote commands, copies).
package main

import (
	"fmt"
	"os"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

var version = "0.0.0-dev"

// main serves the provider with the SDK's provider.Main, which also connects
// to the engine: log lines of running commands go there as status messages.
func main() {
	err := provider.Main("command", func(host *provider.HostClient) (pulumirpc.ResourceProviderServer, error) {
		return &commandProvider{log: engineLog(host)}, nil
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "fatal: %v\n", err)
		os.Exit(1)
	}
}
