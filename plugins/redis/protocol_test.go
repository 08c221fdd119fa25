package taskiqredis

import (
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// The plugin speaks RESP2 unless the URL asks for a protocol, and the
// choice reaches every topology's client.
func TestProtocolDefaultsToRESP2(t *testing.T) {
	t.Parallel()
	opt, err := parseURL("redis://127.0.0.1:6379/0")
	require.NoError(t, err)
	require.Equal(t, 2, opt.Protocol)

	opt, err = parseURL("redis://127.0.0.1:6379/0?protocol=3")
	require.NoError(t, err)
	require.Equal(t, 3, opt.Protocol)

	for name, c := range map[string]connConfig{
		"sentinel": {URL: "redis://127.0.0.1:1/0", SentinelMaster: "m", SentinelAddrs: []string{"127.0.0.1:1"}},
		"cluster":  {URL: "redis://127.0.0.1:1/0?protocol=3", ClusterAddrs: []string{"127.0.0.1:1"}},
		"single":   {URL: "redis://127.0.0.1:1/0"},
	} {
		client, _, err := newClient(c)
		require.NoError(t, err, name)
		want := 2
		if name == "cluster" {
			want = 3
		}
		require.Equal(t, want, protocolOf(client), name)
		require.NoError(t, client.Close())
	}
}

func protocolOf(c redis.UniversalClient) int {
	switch cl := c.(type) {
	case *redis.Client:
		return cl.Options().Protocol
	case *redis.ClusterClient:
		return cl.Options().Protocol
	}
	return -1
}
