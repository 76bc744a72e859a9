// webha: tests of the patched rpc.go (receiveStream). scripts/golibvirt-patched.sh copies this
// file next to rpc.go in the patched module; the toolchain tier runs them there. A fake libvirtd
// on a net.Pipe answers each download with its packets in a given order, as libvirtd 9.0 was
// seen to send them.

package libvirt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/digitalocean/go-libvirt/internal/constants"
	xdr "github.com/digitalocean/go-libvirt/internal/go-xdr/xdr2"
	"github.com/digitalocean/go-libvirt/socket"
)

type pipeDialer struct{ conn net.Conn }

func (d pipeDialer) Dial() (net.Conn, error) { return d.conn, nil }

// pkt is one packet the fake libvirtd sends back for a call (same program, procedure, serial).
type pkt struct {
	typ, status uint32
	payload     []byte
}

var (
	reply   = pkt{typ: socket.Reply, status: socket.StatusOK}
	chunkA  = pkt{typ: socket.Stream, status: socket.StatusContinue, payload: bytes.Repeat([]byte("a"), 262120)}
	chunkB  = pkt{typ: socket.Stream, status: socket.StatusContinue, payload: []byte("bbbbbbbbbbbbbbbbbbbbbbbb")}
	chunkC  = pkt{typ: socket.Stream, status: socket.StatusContinue, payload: bytes.Repeat([]byte("c"), 114688)}
	eof     = pkt{typ: socket.Stream, status: socket.StatusContinue} // how libvirtd ends a download
	wantAll = string(chunkA.payload) + string(chunkB.payload) + string(chunkC.payload)
)

func libvirtError(msg string) []byte {
	var b bytes.Buffer
	e := struct {
		Code     uint32
		DomainID uint32
		Padding  uint8
		Message  string
		Level    uint32
	}{Code: uint32(ErrInternalError), Message: msg, Level: 2}
	if _, err := xdr.Marshal(&b, &e); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// fakeLibvirtd answers StorageVolDownload with download's packets and ConnectGetLibVersion with
// version 9.0.0, until the connection closes.
func fakeLibvirtd(conn net.Conn, download []pkt) {
	defer conn.Close()
	for {
		var hdr [28]byte
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[0:4])
		if _, err := io.CopyN(io.Discard, conn, int64(n)-28); err != nil {
			return
		}
		proc := binary.BigEndian.Uint32(hdr[12:16])
		serial := binary.BigEndian.Uint32(hdr[20:24])
		var out []pkt
		switch proc {
		case constants.ProcStorageVolDownload:
			out = download
		case constants.ProcConnectGetLibVersion:
			out = []pkt{{typ: socket.Reply, status: socket.StatusOK, payload: []byte{0, 0, 0, 0, 0, 0x89, 0x54, 0x40}}}
		default:
			out = []pkt{{typ: socket.Reply, status: socket.StatusError, payload: libvirtError("unexpected call")}}
		}
		for _, p := range out {
			var b bytes.Buffer
			for _, v := range []uint32{uint32(28 + len(p.payload)), constants.Program, constants.ProtocolVersion, proc, p.typ, serial, p.status} {
				_ = binary.Write(&b, binary.BigEndian, v)
			}
			b.Write(p.payload)
			if _, err := conn.Write(b.Bytes()); err != nil {
				return
			}
		}
	}
}

func connected(t *testing.T, download []pkt) *Libvirt {
	t.Helper()
	client, server := net.Pipe()
	go fakeLibvirtd(server, download)
	l := NewWithDialer(pipeDialer{client})
	if err := l.socket.Connect(); err != nil { // no handshake: the fake answers only two calls
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return l
}

// within runs f and fails the test if it has not returned after 5 s (a hang, not slowness: the
// fake answers at once).
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no return after 5 s (the connection hangs)", what)
	}
}

// afterwards: the connection still answers another call.
func stillAnswers(t *testing.T, l *Libvirt) {
	t.Helper()
	within(t, "the next call on the same connection", func() {
		if v, err := l.ConnectGetLibVersion(); err != nil || v != 9000000 {
			t.Errorf("ConnectGetLibVersion after the download: %v, %v", v, err)
		}
	})
}

func TestWebhaDownloadInAnyPacketOrder(t *testing.T) {
	for _, tc := range []struct {
		name  string
		order []pkt
	}{
		{"reply first", []pkt{reply, chunkA, chunkB, chunkC, eof}},
		// the order seen with libvirt 9.0 (one download in 40-200): upstream returned 0 bytes
		// and the next packet hung the connection
		{"first chunk before the reply", []pkt{chunkA, reply, chunkB, chunkC, eof}},
		{"two chunks before the reply", []pkt{chunkA, chunkB, reply, chunkC, eof}},
		{"whole stream before the reply", []pkt{chunkA, chunkB, chunkC, eof, reply}},
		{"stream ends with StatusOK", []pkt{chunkA, reply, chunkB, chunkC, {typ: socket.Stream, status: socket.StatusOK}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := connected(t, tc.order)
			var got bytes.Buffer
			within(t, "StorageVolDownload", func() {
				if err := l.StorageVolDownload(StorageVol{}, &got, 0, 0, 0); err != nil {
					t.Errorf("download: %v", err)
				}
			})
			if got.String() != wantAll {
				t.Errorf("downloaded %d bytes, want %d in order", got.Len(), len(wantAll))
			}
			stillAnswers(t, l)
		})
	}
}

func TestWebhaDownloadErrors(t *testing.T) {
	streamErr := pkt{typ: socket.Stream, status: socket.StatusError, payload: libvirtError("read failed")}
	for _, tc := range []struct {
		name, want string
		order      []pkt
	}{
		{"failed call", "no such volume", []pkt{{typ: socket.Reply, status: socket.StatusError, payload: libvirtError("no such volume")}}},
		{"stream error before the reply", "read failed", []pkt{chunkA, streamErr, reply}},
		{"stream error after the reply", "read failed", []pkt{reply, chunkA, streamErr}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := connected(t, tc.order)
			within(t, "StorageVolDownload", func() {
				err := l.StorageVolDownload(StorageVol{}, io.Discard, 0, 0, 0)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("download error %v, want one with %q", err, tc.want)
				}
			})
			stillAnswers(t, l)
		})
	}
}

type failingWriter struct{ writes int }

// Write fails, slowly (a full disk): meanwhile the reader goroutine takes the call's next packet
// and waits to hand it over.
func (w *failingWriter) Write([]byte) (int, error) {
	w.writes++
	time.Sleep(100 * time.Millisecond)
	return 0, errors.New("disk full")
}

// A writer that fails: the error comes back, and the rest of the stream is still read (and
// dropped), so the connection stays usable.
func TestWebhaDownloadWriterFails(t *testing.T) {
	l := connected(t, []pkt{chunkA, reply, chunkB, chunkC, eof})
	w := &failingWriter{}
	within(t, "StorageVolDownload", func() {
		if err := l.StorageVolDownload(StorageVol{}, w, 0, 0, 0); err == nil || err.Error() != "disk full" {
			t.Errorf("download error %v, want the writer's", err)
		}
	})
	if w.writes != 1 {
		t.Errorf("%d writes to the failing writer, want 1 (none after its error)", w.writes)
	}
	stillAnswers(t, l)
}
