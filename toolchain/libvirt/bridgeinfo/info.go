// Package bridgeinfo maps the upstream terraform-provider-libvirt onto the
// Pulumi "libvirt" package tokens used by the pulumi-libvirt SDKs.
package bridgeinfo

import (
	libvirt "github.com/dmacvicar/terraform-provider-libvirt/libvirt"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge/tokens"
	shimv2 "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim/sdk-v2"
)

// Version is set at build time with -ldflags -X.
var Version = "0.0.0-dev"

// Provider returns the bridge description; metadata is the bridge-metadata.json
// produced by the tfgen step ("{}" while generating it).
func Provider(metadata []byte) tfbridge.ProviderInfo {
	p := tfbridge.ProviderInfo{
		P:            shimv2.NewProvider(libvirt.Provider()),
		Name:         "libvirt",
		GitHubOrg:    "dmacvicar",
		Version:      Version,
		DisplayName:  "libvirt",
		Publisher:    "Pulumi",
		License:      "Apache-2.0",
		Description:  "A Pulumi package for creating and managing libvirt resources.",
		Keywords:     []string{"pulumi", "libvirt"},
		MetadataInfo: tfbridge.NewProviderMetadata(metadata),
		Config: map[string]*tfbridge.SchemaInfo{
			"uri": {Default: &tfbridge.DefaultInfo{EnvVars: []string{"LIBVIRT_DEFAULT_URI"}}},
		},
		// Token whose default spelling ("cloudinitDisk") differs from the SDKs.
		Resources: map[string]*tfbridge.ResourceInfo{
			"libvirt_cloudinit_disk": {Tok: "libvirt:index/cloudInitDisk:CloudInitDisk"},
		},
	}
	p.MustComputeTokens(tokens.SingleModule("libvirt_", "index", tokens.MakeStandard("libvirt")))
	p.SetAutonaming(255, "-")
	return p
}
