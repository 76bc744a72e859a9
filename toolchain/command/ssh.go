package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/retry"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"google.golang.org/protobuf/types/known/structpb"
)

// Signature keys of serialized assets and archives (see the Pulumi SDK's sig package).
const (
	sigKey     = "4dabf18193072939515e22adb298388d"
	assetSig   = "c44067f5952c0a294b673a41bacd8c17"
	archiveSig = "0def7320c3a5731c473e5ecbe6d01bc7"
)

func num(v *structpb.Value, def float64) float64 {
	if n, ok := v.GetKind().(*structpb.Value_NumberValue); ok {
		return n.NumberValue
	}
	return def
}

// hostKeyMismatch is the error of a server whose key is not connection.hostKey;
// it is not retried: another dial reaches the same impostor.
type hostKeyMismatch struct {
	addr      string
	got, want ssh.PublicKey
}

func (e *hostKeyMismatch) Error() string {
	return fmt.Sprintf("host key mismatch for %s: the server presented %s %s, connection.hostKey expects %s %s",
		e.addr, e.got.Type(), ssh.FingerprintSHA256(e.got), e.want.Type(), ssh.FingerprintSHA256(e.want))
}

// hostKeyCallback pins the server key to connection.hostKey, given as one
// public key line ("ssh-ed25519 AAAA... [comment]", a .pub file or an
// authorized_keys entry). Without hostKey any key is accepted, as upstream
// documents ("If not provided, the host key will be ignored").
func hostKeyCallback(conn *structpb.Struct) (ssh.HostKeyCallback, error) {
	text := strings.TrimSpace(str(conn, "hostKey"))
	if text == "" {
		return ssh.InsecureIgnoreHostKey(), nil
	}
	want, _, _, _, err := ssh.ParseAuthorizedKey([]byte(text))
	if err != nil {
		return nil, fmt.Errorf("connection.hostKey of %s: not an SSH public key line: %w", str(conn, "host"), err)
	}
	fixed := ssh.FixedHostKey(want)
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		if fixed(hostname, remote, key) != nil {
			return &hostKeyMismatch{addr: hostname, got: key, want: want}
		}
		return nil
	}, nil
}

func clientConfig(conn *structpb.Struct) (*ssh.ClientConfig, error) {
	user := str(conn, "user")
	if user == "" {
		user = "root"
	}
	var auth []ssh.AuthMethod
	if key := str(conn, "privateKey"); key != "" {
		var signer ssh.Signer
		var err error
		if pw := str(conn, "privateKeyPassword"); pw != "" {
			signer, err = ssh.ParsePrivateKeyWithPassphrase([]byte(key), []byte(pw))
		} else {
			signer, err = ssh.ParsePrivateKey([]byte(key))
		}
		if err != nil {
			return nil, fmt.Errorf("parsing connection.privateKey: %w", err)
		}
		auth = append(auth, ssh.PublicKeys(signer))
	}
	if pw := str(conn, "password"); pw != "" {
		auth = append(auth, ssh.Password(pw))
	}
	// The agent: agentSocketPath, else SSH_AUTH_SOCK but only when no key or
	// password is given (upstream always adds SSH_AUTH_SOCK, so a stale socket
	// in the operator's shell fails every step; here it cannot).
	sock := str(conn, "agentSocketPath")
	if sock == "" && len(auth) == 0 {
		sock = os.Getenv("SSH_AUTH_SOCK")
	}
	if sock != "" {
		a, err := net.Dial("unix", sock)
		if err != nil {
			return nil, fmt.Errorf("ssh agent %s: %w", sock, err)
		}
		auth = append(auth, ssh.PublicKeysCallback(agent.NewClient(a).Signers))
	}
	hk, err := hostKeyCallback(conn)
	if err != nil {
		return nil, err
	}
	// perDialTimeout: seconds per dial, 0 = no maximum (upstream default 15).
	timeout := time.Duration(num(field(conn, "perDialTimeout"), 15)) * time.Second
	return &ssh.ClientConfig{User: user, Auth: auth, Timeout: timeout, HostKeyCallback: hk}, nil
}

// dialSSH dials like upstream: dialErrorLimit failed dials are allowed (-1 =
// unlimited, default 10), the next failure ends it; the pause between dials
// is retry.Until's backoff (0.1 s growing to 5 s).
func dialSSH(ctx context.Context, conn *structpb.Struct) (*ssh.Client, error) {
	if conn == nil {
		return nil, fmt.Errorf("connection is required")
	}
	if field(conn, "proxy").GetStructValue() != nil {
		return nil, fmt.Errorf("connection.proxy is not supported by this command provider")
	}
	cfg, err := clientConfig(conn)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(str(conn, "host"), strconv.Itoa(int(num(field(conn, "port"), 22))))
	limit := int(num(field(conn, "dialErrorLimit"), 10))
	var client *ssh.Client
	var lastErr error
	ok, _, err := retry.Until(ctx, retry.Acceptor{
		Accept: func(try int, _ time.Duration) (bool, any, error) {
			client, lastErr = dialOnce(addr, cfg)
			var mismatch *hostKeyMismatch
			switch {
			case lastErr == nil:
				return true, nil, nil
			case errors.As(lastErr, &mismatch):
				return true, nil, lastErr
			case limit >= 0 && try+1 > limit:
				return true, nil, fmt.Errorf("dialing %s: after %d failed attempts: %w", addr, try+1, lastErr)
			}
			return false, nil, nil
		},
	})
	if err == nil && !ok {
		err = fmt.Errorf("dialing %s: %w (last error: %v)", addr, ctx.Err(), lastErr)
	}
	if err != nil {
		return nil, err
	}
	return client, nil
}

// dialOnce is ssh.Dial with cfg.Timeout bounding the SSH handshake as well
// as the TCP connect (ssh.Dial bounds only the connect, so a server that
// accepts and never answers would hang the step forever).
func dialOnce(addr string, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	conn, err := net.DialTimeout("tcp", addr, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout > 0 {
		if err := conn.SetDeadline(time.Now().Add(cfg.Timeout)); err != nil {
			conn.Close()
			return nil, err
		}
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		c.Close()
		return nil, err
	}
	return ssh.NewClient(c, chans, reqs), nil
}

// openSession dials the inputs' connection and opens one session on it.
func openSession(ctx context.Context, inputs *structpb.Struct) (*ssh.Client, *ssh.Session, error) {
	client, err := dialSSH(ctx, field(inputs, "connection").GetStructValue())
	if err != nil {
		return nil, nil, err
	}
	sess, err := client.NewSession()
	if err != nil {
		client.Close()
		return nil, nil, err
	}
	return client, sess, nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func runRemote(ctx context.Context, command string, inputs *structpb.Struct, env []string, out *output) error {
	client, sess, err := openSession(ctx, inputs)
	if err != nil {
		return err
	}
	defer client.Close()
	defer sess.Close()
	// Exported in the command line, so the server's AcceptEnv does not matter
	// (upstream uses Setenv, which sshd drops unless AcceptEnv lists the name).
	var prefix strings.Builder
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		prefix.WriteString("export " + k + "=" + shellQuote(v) + "; ")
	}
	sess.Stdout, sess.Stderr = out.outW, out.errW
	sess.Stdin = strings.NewReader(str(inputs, "stdin"))
	return sess.Run(prefix.String() + command)
}

// assetContent returns the bytes of a text or file-path asset.
func assetContent(src *structpb.Struct) ([]byte, error) {
	switch sig := str(src, sigKey); {
	case sig == archiveSig:
		return nil, fmt.Errorf("CopyToRemote: archives are not supported by this command provider; use a file asset")
	case sig != assetSig:
		return nil, fmt.Errorf("CopyToRemote: source is not an asset")
	case field(src, "text") != nil:
		return []byte(str(src, "text")), nil
	case str(src, "path") != "":
		return os.ReadFile(str(src, "path"))
	}
	return nil, fmt.Errorf("CopyToRemote: only text and file-path assets are supported")
}

// copyToRemote writes a file asset (text or local path) to remotePath over SSH,
// creating the parent directory (upstream's SFTP copy needs it to exist).
func copyToRemote(ctx context.Context, inputs *structpb.Struct) error {
	src := field(inputs, "source").GetStructValue()
	remotePath := str(inputs, "remotePath")
	if src == nil || remotePath == "" {
		return fmt.Errorf("source and remotePath are required")
	}
	content, err := assetContent(src)
	if err != nil {
		return err
	}
	client, sess, err := openSession(ctx, inputs)
	if err != nil {
		return err
	}
	defer client.Close()
	defer sess.Close()
	var stderr bytes.Buffer
	sess.Stdin, sess.Stderr = bytes.NewReader(content), &stderr
	dir := remotePath[:strings.LastIndex(remotePath, "/")+1]
	cmd := "cat > " + shellQuote(remotePath)
	if dir != "" && dir != "/" {
		cmd = "mkdir -p " + shellQuote(dir) + " && " + cmd
	}
	if err := sess.Run(cmd); err != nil {
		return fmt.Errorf("copying to %s: %v: %s", remotePath, err, stderr.String())
	}
	return nil
}
