// Generates schema.json and bridge-metadata.json for pulumi-resource-libvirt.
package main

import (
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfgen"

	"webha.local/pulumi-libvirt/bridgeinfo"
)

func main() {
	tfgen.Main("libvirt", bridgeinfo.Version, bridgeinfo.Provider([]byte("{}")))
}
