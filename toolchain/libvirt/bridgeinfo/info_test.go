package bridgeinfo

// The token mapping the pulumi-libvirt 0.5.4 SDKs expect: every Terraform
// resource lands in libvirt:index/..., with the SDK's cloudInitDisk spelling,
// and the provider's uri falls back to LIBVIRT_DEFAULT_URI.

import (
	"strings"
	"testing"
)

func TestTokens(t *testing.T) {
	p := Provider([]byte("{}"))
	want := map[string]string{
		"libvirt_cloudinit_disk": "libvirt:index/cloudInitDisk:CloudInitDisk",
		"libvirt_domain":         "libvirt:index/domain:Domain",
		"libvirt_network":        "libvirt:index/network:Network",
		"libvirt_volume":         "libvirt:index/volume:Volume",
	}
	for tf, tok := range want {
		r, ok := p.Resources[tf]
		if !ok || string(r.Tok) != tok {
			t.Errorf("%s: token %v, want %s", tf, r, tok)
		}
	}
	for tf, r := range p.Resources {
		if !strings.HasPrefix(string(r.Tok), "libvirt:index/") {
			t.Errorf("%s maps to %s, outside libvirt:index", tf, r.Tok)
		}
	}
	if d := p.Config["uri"].Default; d == nil || len(d.EnvVars) != 1 || d.EnvVars[0] != "LIBVIRT_DEFAULT_URI" {
		t.Errorf("uri default: %+v, want LIBVIRT_DEFAULT_URI", d)
	}
}
