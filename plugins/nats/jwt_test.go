package taskiqnats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/sdktest"
)

// jwtSetup is a decentralized-auth (operator/JWT) setup made in the test:
// an operator, a system account and an account with JetStream, whose JWTs
// a nats-server with a MEMORY resolver is preloaded with.
type jwtSetup struct {
	operator  nkeys.KeyPair
	account   nkeys.KeyPair
	accountID string
	conf      string // nats-server config lines
}

func newJWTSetup(t *testing.T) jwtSetup {
	t.Helper()
	op, err := nkeys.CreateOperator()
	require.NoError(t, err)
	opPub, err := op.PublicKey()
	require.NoError(t, err)
	oc := jwt.NewOperatorClaims(opPub)
	oc.Name = "jwttest-operator"
	opJWT, err := oc.Encode(op)
	require.NoError(t, err)

	account := func(name string, js bool) (nkeys.KeyPair, string, string) {
		kp, err := nkeys.CreateAccount()
		require.NoError(t, err)
		pub, err := kp.PublicKey()
		require.NoError(t, err)
		ac := jwt.NewAccountClaims(pub)
		ac.Name = name
		if js {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		tok, err := ac.Encode(op)
		require.NoError(t, err)
		return kp, pub, tok
	}
	_, sysPub, sysJWT := account("SYS", false)
	acct, acctPub, acctJWT := account("jwttest-app", true)
	conf := fmt.Sprintf("operator: %q\nsystem_account: %q\nresolver: MEMORY\nresolver_preload: {\n  %s: %q\n  %s: %q\n}\n",
		opJWT, sysPub, sysPub, sysJWT, acctPub, acctJWT)
	return jwtSetup{operator: op, account: acct, accountID: acctPub, conf: conf}
}

// userCreds writes a creds file (jwt.FormatUserConfig) for a new user of
// the account signed by signer, expiring at expires (zero: never).
func userCreds(t *testing.T, signer nkeys.KeyPair, expires time.Time) string {
	t.Helper()
	user, err := nkeys.CreateUser()
	require.NoError(t, err)
	pub, err := user.PublicKey()
	require.NoError(t, err)
	issuer, err := signer.PublicKey()
	require.NoError(t, err)
	uc := jwt.NewUserClaims(pub)
	uc.Name = "jwttest-user"
	uc.IssuerAccount = issuer
	if !expires.IsZero() {
		uc.Expires = expires.Unix()
	}
	tok, err := uc.Encode(signer)
	require.NoError(t, err)
	seed, err := user.Seed()
	require.NoError(t, err)
	creds, err := jwt.FormatUserConfig(tok, seed)
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "user.creds")
	require.NoError(t, os.WriteFile(file, creds, 0o600))
	return file
}

// TestCredsFileAgainstJWTServer: the plugin reaches a nats-server in
// operator mode with a creds_file, kicks a task and consumes and acks it
// (the stream and consumer are created in the JWT account's JetStream), and
// the result backend stores and reads a result. A user JWT that expired, or
// that an account unknown to the server signed, is refused at once with
// ErrUnauthenticated and an error naming the server.
func TestCredsFileAgainstJWTServer(t *testing.T) {
	s := newJWTSetup(t)
	port := privateServer(t, s.conf)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)

	good := userCreds(t, s.account, time.Now().Add(time.Hour))
	roundTrip(t, map[string]any{"servers": []string{url}, "creds_file": good})

	t.Run("ResultBackend", func(t *testing.T) {
		b, err := json.Marshal(map[string]any{"servers": []string{url}, "creds_file": good,
			"bucket": "tq_nats_jwttest_" + randomHex(4), "poll_fallback": "200ms"})
		require.NoError(t, err)
		rb := sdktest.Launch(t, sdk.KindResultBackend, string(b)).ResultBackend()
		body := []byte(`{"is_err":false,"return_value":42,"execution_time":0.1}`)
		require.NoError(t, rb.SetResults(ctxT(t), []sdk.StoredResult{{TaskID: "jwt-1", Body: body}}))
		got, err := rb.GetResult(ctxT(t), "jwt-1")
		require.NoError(t, err)
		require.JSONEq(t, string(body), string(got))
	})

	stranger, err := nkeys.CreateAccount()
	require.NoError(t, err)
	for name, file := range map[string]string{
		"Expired":        userCreds(t, s.account, time.Now().Add(-time.Minute)),
		"UnknownAccount": userCreds(t, stranger, time.Time{}),
	} {
		t.Run(name, func(t *testing.T) {
			conn, _, err := decodeBrokerConfig(cfgOf(t, map[string]any{"servers": []string{url}, "creds_file": file}))
			require.NoError(t, err, "the file is well formed: only the server can refuse it")
			dials := &countingDialer{}
			conn.opts = append(conn.opts, nats.SetCustomDialer(dials))
			_, _, err = connect(conn, hclog.NewNullLogger())
			require.Error(t, err)
			require.EqualValues(t, 1, dials.n.Load(), "refused credentials fail at the first attempt, not after retries")
			require.True(t, errors.Is(err, sdk.ErrUnauthenticated), "got %v", err)
			require.Contains(t, err.Error(), url, "the error names the server")
			require.Contains(t, strings.ToLower(err.Error()), "authorization")
			t.Log(err)
		})
	}
}

// TestCredsFileWithoutCredentials: an empty file, garbage, a JWT without a
// seed, or a seed that is not the JWT's user is refused at Configure, on
// creds_file, with the file's path; nothing connects.
func TestCredsFileWithoutCredentials(t *testing.T) {
	dir := t.TempDir()
	op, err := nkeys.CreateAccount()
	require.NoError(t, err)
	valid := userCreds(t, op, time.Time{})
	b, err := os.ReadFile(valid)
	require.NoError(t, err)
	tok, err := jwt.ParseDecoratedJWT(b)
	require.NoError(t, err)
	other, err := nkeys.CreateUser()
	require.NoError(t, err)
	otherSeed, err := other.Seed()
	require.NoError(t, err)
	jwtOnly, err := jwt.DecorateJWT(tok)
	require.NoError(t, err)
	otherDecorated, err := jwt.DecorateSeed(otherSeed)
	require.NoError(t, err)
	mismatched := append(append([]byte{}, jwtOnly...), otherDecorated...)

	cases := map[string][]byte{
		"empty.creds":      nil,
		"blank.creds":      []byte("\n  \n"),
		"garbage.creds":    []byte("this is not a credentials file\n"),
		"jwt-only.creds":   jwtOnly,
		"mismatched.creds": mismatched,
	}
	c := sdktest.Launch(t, "", "")
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(dir, name)
			require.NoError(t, os.WriteFile(file, body, 0o600))
			_, _, err := decodeBrokerConfig(cfgOf(t, map[string]any{"creds_file": file}))
			msg, ok := attrsOf(err)["creds_file"]
			require.True(t, ok, "an error on creds_file, got %v", err)
			require.Contains(t, msg, file)

			// The same through the plugin process, as the host configures it.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cfg, err := json.Marshal(map[string]any{"servers": []string{"nats://127.0.0.1:1"}, "creds_file": file})
			require.NoError(t, err)
			diags, err := c.Configure(ctx, sdk.KindBroker, "creds-"+name, cfg)
			require.NoError(t, err)
			require.NotEmpty(t, diags, "the plugin refuses the config")
			require.Contains(t, fmt.Sprint(diags), file)
		})
	}
	_, _, err = decodeBrokerConfig(cfgOf(t, map[string]any{"creds_file": valid}))
	require.NoError(t, err, "a well-formed file is accepted")
}

// countingDialer dials as net.Dialer does and counts the attempts.
type countingDialer struct {
	d net.Dialer
	n atomic.Int32
}

func (c *countingDialer) Dial(network, address string) (net.Conn, error) {
	c.n.Add(1)
	return c.d.Dial(network, address)
}
