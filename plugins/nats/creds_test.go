package taskiqnats

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/require"
)

// TestCredsFileOptions: creds_file becomes the user JWT the client presents
// and a signature of the server's nonce by the file's seed, and nkey_seed a
// signature by its own seed, as nats-server checks them.
func TestCredsFileOptions(t *testing.T) {
	kp, err := nkeys.CreateUser()
	require.NoError(t, err)
	seed, err := kp.Seed()
	require.NoError(t, err)
	pub, err := kp.PublicKey()
	require.NoError(t, err)
	account, err := nkeys.CreateAccount()
	require.NoError(t, err)
	token, err := jwt.NewUserClaims(pub).Encode(account)
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "user.creds")
	creds := fmt.Sprintf("-----BEGIN NATS USER JWT-----\n%s\n------END NATS USER JWT------\n\n"+
		"-----BEGIN USER NKEY SEED-----\n%s\n------END USER NKEY SEED------\n", token, seed)
	require.NoError(t, os.WriteFile(file, []byte(creds), 0o600))

	apply := func(c connConfig) nats.Options {
		conn, errs := validateConn(c)
		require.Empty(t, errs)
		o := nats.GetDefaultOptions()
		for _, opt := range conn.opts {
			require.NoError(t, opt(&o))
		}
		return o
	}
	nonce := []byte("server nonce")

	o := apply(connConfig{CredsFile: file})
	require.NotNil(t, o.UserJWT, "creds_file sets the user JWT")
	got, err := o.UserJWT()
	require.NoError(t, err)
	require.Equal(t, token, got)
	sig, err := o.SignatureCB(nonce)
	require.NoError(t, err)
	require.NoError(t, kp.Verify(nonce, sig), "the nonce is signed with the file's seed")

	o = apply(connConfig{NKeySeed: string(seed)})
	require.Equal(t, pub, o.Nkey)
	sig, err = o.SignatureCB(nonce)
	require.NoError(t, err)
	require.NoError(t, kp.Verify(nonce, sig))

}
