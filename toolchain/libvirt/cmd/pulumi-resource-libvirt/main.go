// pulumi-resource-libvirt: the libvirt resource provider (Terraform bridge).
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"

	"webha.local/pulumi-libvirt/bridgeinfo"
)

//go:embed schema.json
var schema []byte

//go:embed bridge-metadata.json
var metadata []byte

func main() {
	tfbridge.Main("libvirt", bridgeinfo.Version, bridgeinfo.Provider(metadata), schema)
}
