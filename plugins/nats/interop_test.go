package taskiqnats

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/sdktest"
)

// TestPythonSettingsMatchTheGoStream sends the stream and consumer creation
// requests that taskiq-nats makes at startup (nats-py's JSON for the
// StreamConfig and ConsumerConfig the README gives) to a stream and
// consumer this plugin created: the server must accept them as the same
// configuration, whichever side starts first.
func TestPythonSettingsMatchTheGoStream(t *testing.T) {
	url := natsURL(t)
	t.Parallel()
	prefix := testNames(t, url)
	subject, durable := prefix+"_tasks", prefix+"_durable"
	b := sdktest.Launch(t, sdk.KindBroker, testBrokerConfig(t, url, prefix, map[string]any{"ack_wait": "30s"})).Broker()
	st, err := b.Listen(ctxT(t), sdk.ListenRequest{}) // creates the stream and the consumer
	require.NoError(t, err)
	defer st.Close()

	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	// What nats-py sends for StreamConfig(name=..., subjects=[s, s+".>"],
	// retention=RetentionPolicy.WORK_QUEUE): its dataclass defaults
	// included, None fields left out.
	stream := map[string]any{
		"name": prefix, "subjects": []string{subject, subject + ".>"}, "retention": "workqueue",
		"discard": "old", "max_msgs_per_subject": -1, "max_msg_size": -1, "no_ack": false,
		"duplicate_window": 0, "sealed": false, "deny_delete": false, "deny_purge": false,
		"allow_rollup_hdrs": false,
	}
	apiOK(t, nc, "$JS.API.STREAM.CREATE."+prefix, stream)
	// ConsumerConfig(durable_name, filter_subject, ack_policy=EXPLICIT,
	// ack_wait=30, max_deliver=-1, max_ack_pending=-1); nats-py sends
	// ack_wait in nanoseconds.
	consumer := map[string]any{"stream_name": prefix, "config": map[string]any{
		"durable_name": durable, "deliver_policy": "all", "ack_policy": "explicit",
		"ack_wait": (30 * time.Second).Nanoseconds(), "max_deliver": -1, "filter_subject": subject,
		"replay_policy": "instant", "max_ack_pending": -1,
	}}
	apiOK(t, nc, fmt.Sprintf("$JS.API.CONSUMER.DURABLE.CREATE.%s.%s", prefix, durable), consumer)
}

// apiOK makes a JetStream API request and fails on an error answer.
func apiOK(t *testing.T, nc *nats.Conn, subject string, req any) {
	t.Helper()
	body, err := json.Marshal(req)
	require.NoError(t, err)
	resp, err := nc.Request(subject, body, 5*time.Second)
	require.NoError(t, err)
	var out struct {
		Error *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	require.NoError(t, json.Unmarshal(resp.Data, &out))
	if out.Error != nil {
		t.Fatalf("%s refused: %d %d %s", subject, out.Error.Code, out.Error.ErrCode, out.Error.Description)
	}
}
