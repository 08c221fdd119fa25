package taskiqredis

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// Broker modes.
const (
	modeStream = "stream"
	modeList   = "list"
	modePubSub = "pubsub"
)

const defaultURL = "redis://127.0.0.1:6379/0"

// defaultGroup is the stream consumer group, as taskiq-redis names it
// whatever the stream is called.
const defaultGroup = "taskiq"

// defaultUnavailableAfter matches the host's core.DefaultUnreadyAfter: an
// outage shows on /readyz after about twice this (the stream ends, then
// reopening it fails for the host's bound).
const defaultUnavailableAfter = 10 * time.Second

// minUnavailableAfter keeps a stream from ending on a single slow dial or
// failover blip (a Sentinel failover takes a few seconds).
const minUnavailableAfter = time.Second

// connectionAttributes are shared by the broker and the result backend.
func connectionAttributes() []sdk.Attribute {
	return append([]sdk.Attribute{
		{Name: "url", Type: sdk.TypeString, Default: defaultURL, Description: "Redis URL: " +
			"redis://[user:password@]host:port/db, or rediss:// for TLS. The database number " +
			"selects the keyspace; it is ignored in cluster mode."},
		{Name: "username", Type: sdk.TypeString, Default: "", Description: "ACL user name; " +
			"overrides the user of the URL when set."},
		{Name: "password", Type: sdk.TypeString, Default: "", Sensitive: true, Description: "Password; " +
			"overrides the password of the URL when set. Prefer this attribute (from env()) over a " +
			"password in the URL. Never logged."},
		{Name: "sentinel_master", Type: sdk.TypeString, Default: "", Description: "Name of the " +
			"master monitored by Redis Sentinel. When set, sentinel_addrs lists the sentinels and " +
			"the host:port of url is ignored (its db, user, password and TLS settings still apply)."},
		{Name: "sentinel_addrs", Type: sdk.TypeStringList, Default: []string{}, Description: "Sentinel " +
			"addresses (host:port) used with sentinel_master."},
		{Name: "cluster_addrs", Type: sdk.TypeStringList, Default: []string{}, Description: "Seed " +
			"addresses (host:port) of a Redis Cluster. When set, the client speaks the cluster " +
			"protocol and every key of one queue carries the hash tag {queue} so that the queue's " +
			"scripts run on one slot. Credentials and TLS come from url/username/password."},
	}, sdk.TLSAttributes("Needs a rediss:// url.")...)
}

func brokerSchema() sdk.Schema {
	attrs := connectionAttributes()
	attrs = append(attrs,
		sdk.Attribute{Name: "mode", Type: sdk.TypeString, Default: modeStream,
			Allowed: []string{modeStream, modeList, modePubSub}, Description: `"stream" ` +
				`(default: Redis streams with a consumer group, at-least-once, leases, dead letter), ` +
				`"list" (LPUSH/BRPOP, at-most-once) or "pubsub" (PUBLISH/SUBSCRIBE, every listener ` +
				`receives every message, at-most-once). All three use the keys of Python taskiq-redis.`},
		sdk.Attribute{Name: "queue", Type: sdk.TypeString, Default: "taskiq", Description: "Default " +
			"queue: the stream key, list key or pub/sub channel. The queue_name label of a message " +
			"overrides it per message."},
		sdk.Attribute{Name: "consumer_group", Type: sdk.TypeString, Default: defaultGroup, Description: "Stream " +
			"mode: consumer group name, the same for every queue (stream) a worker reads. The default " +
			"\"taskiq\" is taskiq-redis's consumer_group_name default, so Go and Python workers of one " +
			"stream share a group and each message runs once."},
		sdk.Attribute{Name: "consumer_name", Type: sdk.TypeString, Default: "", Description: "Stream " +
			"mode: consumer name of this process within the group. Empty means hostname-pid-random, " +
			"which is unique per process; a fixed name shared by two live processes breaks leases."},
		sdk.Attribute{Name: "lease", Type: sdk.TypeDuration, Default: "30s", Min: sdk.Seconds(10 * time.Millisecond), Description: "Stream " +
			"mode: visibility lease. An entry idle (not extended) for longer is reclaimed by another " +
			"worker of the group. Every worker of one group should use the same lease."},
		sdk.Attribute{Name: "block", Type: sdk.TypeDuration, Default: "2s", Min: sdk.Seconds(time.Millisecond), Description: "How long " +
			"one blocking read (XREADGROUP/BRPOP) waits on the server before it is repeated. It " +
			"bounds how late a stream notices Close and how late a reclaim runs."},
		sdk.Attribute{Name: "count", Type: sdk.TypeNumber, Default: 100, Integer: true, Min: sdk.Num(1), Description: "Largest batch " +
			"read from Redis by one call."},
		sdk.Attribute{Name: "maxlen", Type: sdk.TypeNumber, Default: 0, Integer: true, Min: sdk.Num(0), Description: "Stream mode: " +
			"when > 0, every XADD also trims the stream to about this many entries (MAXLEN ~). " +
			"Trimming drops the oldest entries even when they were never read, so leave it 0 " +
			"(acked entries are deleted anyway) unless the stream is shared with producers that " +
			"never ack."},
		sdk.Attribute{Name: "dedup", Type: sdk.TypeBool, Default: true, Description: "Stream and list " +
			"mode: drop a kick whose task id was kicked within the kick's dedup window (capability dedup, what " +
			"the scheduler's exactly-once rests on). false drops the capability: schedulers then elect a leader."},
		sdk.Attribute{Name: "running_records", Type: sdk.TypeBool, Default: true, Description: "List " +
			"mode: record each popped message as running until it is settled (in the pop's round trip; " +
			"removed at settlement, expiring after lease when the worker dies), so the inspector lists and " +
			"counts running messages. false pops as taskiq-redis does and settles an ack without a Redis " +
			"call: faster, and running messages are invisible."},
		sdk.Attribute{Name: "delete_acked", Type: sdk.TypeBool, Default: true, Description: "Stream " +
			"mode: XDEL an entry when it is acked, so the stream only holds work not yet done. " +
			"Set false if other consumer groups read the same stream."},
		sdk.Attribute{Name: "dead_letter_queue", Type: sdk.TypeString, Default: "", Description: "Stream " +
			"receiving dead-lettered messages (fields data, reason, queue, attempt, failed_at, " +
			"original_id). Empty means \"<queue>:dead\" for each queue."},
		sdk.Attribute{Name: "max_attempts", Type: sdk.TypeNumber, Default: 10, Integer: true, Min: sdk.Num(0), Description: "Stream " +
			"mode: a message about to be delivered for a higher attempt goes to the dead-letter " +
			"queue with reason \"exceeded max_attempts\" instead. 0 disables the limit."},
		sdk.Attribute{Name: "delay_poll", Type: sdk.TypeDuration, Default: "100ms", Min: sdk.Seconds(time.Millisecond), Description: "How " +
			"often a listener moves due delayed messages to their queue; a delayed message starts " +
			"at most this late."},
		unknownTasksAttribute(),
		moveDelayedAttribute(),
		sdk.Attribute{Name: "unavailable_after", Type: sdk.TypeDuration, Default: defaultUnavailableAfter, Min: sdk.Seconds(minUnavailableAfter), Description: "How " +
			"long Redis may stay unreachable (every call of a delivery stream failing, none " +
			"succeeding) before the stream ends with an error wrapping ErrUnavailable, so that the " +
			"worker reopens it and reports itself not ready while that fails. Shorter outages are " +
			"ridden out by retrying. At least 1s."},
		sdk.Attribute{Name: "inspect_refresh", Type: sdk.TypeDuration, Default: "2s", Min: sdk.Seconds(100 * time.Millisecond), Description: "How " +
			"long the queue counts of the inspector (taskiq queues, the dashboard) are cached. A " +
			"refresh costs a few O(1) commands per queue (XLEN, XINFO GROUPS, ZCARD); nothing is " +
			"ever scanned to count. At least 100ms."},
		sdk.Attribute{Name: "pause_poll", Type: sdk.TypeDuration, Default: "1s", Min: sdk.Seconds(10 * time.Millisecond), Description: "How " +
			"often a listener checks whether its queues are paused (taskiq queue pause); a pause " +
			"takes effect within it."},
		sdk.Attribute{Name: "cancel_ttl", Type: sdk.TypeDuration, Default: "24h", Min: sdk.Seconds(time.Second), Description: "How " +
			"long the tombstone of a cancelled task is kept (taskiq cancel): a message of the task " +
			"taken by a worker within it is not run. At least 1s."},
		sdk.Attribute{Name: "inspect_queues", Type: sdk.TypeStringList, Default: []string{}, Description: "Queues " +
			"the inspector lists besides the default queue, the queues kicked to or listened on " +
			"through this plugin (recorded in \"<queue>:queues\") and those of live workers."},
	)
	return sdk.Schema{Attributes: attrs}
}

func resultSchema() sdk.Schema {
	attrs := connectionAttributes()
	attrs = append(attrs,
		sdk.Attribute{Name: "prefix", Type: sdk.TypeString, Default: "", Description: "Key prefix: " +
			"a result is stored under \"<prefix>:<task_id>\", or \"<task_id>\" when empty (the " +
			"taskiq-redis default)."},
		sdk.Attribute{Name: "result_ttl", Type: sdk.TypeDuration, Default: "0s", Description: "Expiry " +
			"of stored results and progress; 0s keeps them until read (keep_results=false) or forever."},
		sdk.Attribute{Name: "keep_results", Type: sdk.TypeBool, Default: true, Description: "When " +
			"false, reading a result deletes it (GETDEL), as taskiq-redis keep_results=False."},
		sdk.Attribute{Name: "poll_fallback", Type: sdk.TypeDuration, Default: "1s", Min: sdk.Seconds(time.Millisecond), Description: "WaitResult " +
			"is woken by a pub/sub notification; it re-reads the key at this interval as well, so a " +
			"notification lost in a reconnect still completes the wait."},
		serializerAttribute(),
	)
	return sdk.Schema{Attributes: attrs}
}

// connConfig is how to reach Redis.
type connConfig struct {
	URL            string   `json:"url"`
	Username       string   `json:"username"`
	Password       string   `json:"password"`
	SentinelMaster string   `json:"sentinel_master"`
	SentinelAddrs  []string `json:"sentinel_addrs"`
	ClusterAddrs   []string `json:"cluster_addrs"`

	sdk.TLSFiles

	// tls is the TLS configuration built from the url and the tls_*
	// attributes by validateConn; nil means plain TCP.
	tls *tls.Config
}

// brokerConfig is the decoded broker block, the schema's defaults applied
// (brokerSchema().Decode), whoever built the config.
type brokerConfig struct {
	connConfig
	Mode            string        `json:"mode"`
	Queue           string        `json:"queue"`
	ConsumerGroup   string        `json:"consumer_group"`
	ConsumerName    string        `json:"consumer_name"`
	Lease           time.Duration `json:"lease"`
	Block           time.Duration `json:"block"`
	Count           int           `json:"count"`
	MaxLen          int64         `json:"maxlen"`
	DeleteAcked     bool          `json:"delete_acked"`
	RunningRecords  bool          `json:"running_records"`
	DeadLetterQueue string        `json:"dead_letter_queue"`
	MaxAttempts     int           `json:"max_attempts"`
	DelayPoll       time.Duration `json:"delay_poll"`
	UnavailableFor  time.Duration `json:"unavailable_after"`
	UnknownTasks    string        `json:"unknown_tasks"`
	MoveDelayed     bool          `json:"move_delayed"`
	InspectRefresh  time.Duration `json:"inspect_refresh"`
	PausePoll       time.Duration `json:"pause_poll"`
	CancelTTL       time.Duration `json:"cancel_ttl"`
	InspectQueues   []string      `json:"inspect_queues"`
	Dedup           bool          `json:"dedup"`
}

// brokerOptions is the validated broker configuration.
type brokerOptions struct {
	mode        string
	queue       string
	group       string
	consumer    string
	lease       time.Duration
	block       time.Duration
	count       int
	maxlen      int64
	deleteAcked bool
	// runningRecords: list mode writes running records (listrunning.go).
	runningRecords bool
	deadLetter     string
	maxAttempts    int
	delayPoll      time.Duration
	// unavailableAfter is how long a listener's calls may fail without
	// one succeeding before its stream ends with ErrUnavailable.
	unavailableAfter time.Duration
	clusterHashes    bool
	// leaveUnknown: unknown_tasks = "leave" (see unknownTasksAttribute).
	leaveUnknown bool
	moveDelayed  bool

	// The inspection and control attributes (inspect.go, pause.go, cancel.go).
	inspectRefresh time.Duration
	pausePoll      time.Duration
	cancelTTL      time.Duration
	inspectQueues  []string

	// noDedup turns the dedup capability off (dedup = false).
	noDedup bool
}

type resultConfig struct {
	connConfig
	Prefix       string        `json:"prefix"`
	ResultTTL    time.Duration `json:"result_ttl"`
	KeepResults  bool          `json:"keep_results"`
	PollFallback time.Duration `json:"poll_fallback"`
	Serializer   string        `json:"serializer"`
}

type resultOptions struct {
	prefix       string
	ttl          time.Duration
	keepResults  bool
	pollFallback time.Duration
	serializer   string
}

func decodeBrokerConfig(cfg sdk.Config) (connConfig, brokerOptions, error) {
	// A value the schema refuses gives way to its default, so the rest is
	// still checked and every problem reported at once.
	var c brokerConfig
	errs := []error{brokerSchema().Decode(cfg, &c)}
	o := brokerOptions{mode: c.Mode, queue: c.Queue, group: c.ConsumerGroup, consumer: c.ConsumerName,
		deadLetter: c.DeadLetterQueue, deleteAcked: c.DeleteAcked, runningRecords: c.RunningRecords,
		clusterHashes: len(c.ClusterAddrs) > 0, moveDelayed: c.MoveDelayed,
		lease: c.Lease, block: c.Block, delayPoll: c.DelayPoll, unavailableAfter: c.UnavailableFor,
		count: c.Count, maxlen: c.MaxLen, maxAttempts: c.MaxAttempts,
		inspectRefresh: c.InspectRefresh, pausePoll: c.PausePoll, cancelTTL: c.CancelTTL,
		inspectQueues: c.InspectQueues, noDedup: !c.Dedup}
	if o.mode == "" {
		o.mode = modeStream
	}
	switch o.mode {
	case modeStream, modeList, modePubSub:
	default:
		errs = append(errs, sdk.AttrError("mode", "unknown mode %q; use \"stream\", \"list\" or \"pubsub\"", o.mode))
	}
	if o.queue == "" {
		o.queue = "taskiq"
	}
	if o.group == "" {
		o.group = defaultGroup
	}
	if o.consumer == "" {
		o.consumer = defaultConsumerName()
	}
	switch c.UnknownTasks {
	case "", unknownDeadLetter:
	case unknownLeave:
		o.leaveUnknown = true
	default:
		errs = append(errs, sdk.AttrError("unknown_tasks", "unknown value %q; use \"dead_letter\" or \"leave\"", c.UnknownTasks))
	}
	errs = append(errs, validateConn(&c.connConfig)...)
	if err := errors.Join(errs...); err != nil {
		return connConfig{}, brokerOptions{}, err
	}
	return c.connConfig, o, nil
}

func decodeResultConfig(cfg sdk.Config) (connConfig, resultOptions, error) {
	var c resultConfig
	errs := []error{resultSchema().Decode(cfg, &c)}
	o := resultOptions{prefix: c.Prefix, ttl: c.ResultTTL, keepResults: c.KeepResults, pollFallback: c.PollFallback,
		serializer: c.Serializer}
	switch o.serializer {
	case "":
		o.serializer = serializerJSON
	case serializerJSON, serializerPickle:
	default:
		errs = append(errs, sdk.AttrError("serializer", "unknown serializer %q; use \"json\" or \"pickle\"", o.serializer))
	}
	if o.ttl > 0 && o.ttl < time.Millisecond {
		errs = append(errs, sdk.AttrError("result_ttl", "must be 0s or at least 1ms"))
	}
	errs = append(errs, validateConn(&c.connConfig)...)
	if err := errors.Join(errs...); err != nil {
		return connConfig{}, resultOptions{}, err
	}
	return c.connConfig, o, nil
}

// validateConn checks the connection attributes and builds c.tls.
func validateConn(c *connConfig) []error {
	var errs []error
	if opt, err := parseURL(c.URL); err != nil {
		errs = append(errs, sdk.AttrError("url", "%v", err))
	} else {
		c.tls, errs = buildTLS(*c, opt.TLSConfig)
	}
	if c.SentinelMaster != "" && len(c.SentinelAddrs) == 0 {
		errs = append(errs, sdk.AttrError("sentinel_addrs", "sentinel_master is set, so list the sentinels here, e.g. [\"10.0.0.1:26379\"]"))
	}
	if c.SentinelMaster == "" && len(c.SentinelAddrs) > 0 {
		errs = append(errs, sdk.AttrError("sentinel_master", "sentinel_addrs is set, so name the monitored master here"))
	}
	if c.SentinelMaster != "" && len(c.ClusterAddrs) > 0 {
		errs = append(errs, sdk.AttrError("cluster_addrs", "cannot be combined with sentinel_master; pick one topology"))
	}
	return errs
}

// buildTLS adds the tls_* attributes to base, the TLS configuration that a
// rediss:// URL yields (nil for redis://). The files are read here, at
// configuration time, so a wrong path is reported against its attribute
// instead of as a connection failure later.
func buildTLS(c connConfig, base *tls.Config) (*tls.Config, []error) {
	if base == nil {
		return nil, c.RefuseWithoutTLS("write the url as rediss://host:port/db to enable TLS")
	}
	cfg := base.Clone()
	if c.SentinelMaster != "" || len(c.ClusterAddrs) > 0 {
		// The url's host is not where the client connects in these modes:
		// leave the name empty so each sentinel, master or cluster node is
		// verified under its own address (crypto/tls takes the name from
		// the address dialed).
		cfg.ServerName = ""
	}
	return sdk.ClientTLS(cfg, c.TLSFiles)
}

// parseURL parses a Redis URL. Its errors never contain the password.
func parseURL(raw string) (*redis.Options, error) {
	if raw == "" {
		raw = defaultURL
	}
	opt, err := redis.ParseURL(raw)
	if err != nil {
		// go-redis returns net/url's *url.Error, which quotes the whole URL,
		// password included, and a URL net/url rejects has no Redacted form:
		// so the text is redacted, not the parsed URL.
		return nil, fmt.Errorf("%s is not a valid Redis URL (%s); write it like redis://host:6379/0 or rediss://host:6380/0",
			sdk.RedactURLs(raw), sdk.RedactURLs(err.Error()))
	}
	if u, err := url.Parse(raw); err == nil && !u.Query().Has("protocol") {
		// RESP2 unless the URL asks for another protocol: the plugin uses
		// nothing of RESP3, and go-redis checks every RESP3 connection for
		// push notifications before each command (10% of the broker's CPU
		// when kicking).
		opt.Protocol = 2
	}
	return opt, nil
}

// newClient builds the client for the configured topology and a
// password-free description of where it points, for error messages.
func newClient(c connConfig) (redis.UniversalClient, string, error) {
	opt, err := parseURL(c.URL)
	if err != nil {
		return nil, "", err
	}
	if c.Username != "" {
		opt.Username = c.Username
	}
	if c.Password != "" {
		opt.Password = c.Password
	}
	if opt.TLSConfig != nil {
		// Built by validateConn; a connConfig that never went through it
		// (a test building one by hand) keeps the URL's defaults.
		if c.tls == nil {
			c.tls, _ = buildTLS(c, opt.TLSConfig)
		}
		opt.TLSConfig = c.tls
	}
	switch {
	case c.SentinelMaster != "":
		client := redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:            c.SentinelMaster,
			SentinelAddrs:         c.SentinelAddrs,
			Username:              opt.Username,
			Password:              opt.Password,
			DB:                    opt.DB,
			Protocol:              opt.Protocol,
			TLSConfig:             opt.TLSConfig,
			ContextTimeoutEnabled: true,
		})
		return client, fmt.Sprintf("sentinel master %q via %s", c.SentinelMaster, strings.Join(c.SentinelAddrs, ",")), nil
	case len(c.ClusterAddrs) > 0:
		client := redis.NewClusterClient(&redis.ClusterOptions{
			Addrs:                 c.ClusterAddrs,
			Username:              opt.Username,
			Password:              opt.Password,
			Protocol:              opt.Protocol,
			TLSConfig:             opt.TLSConfig,
			ContextTimeoutEnabled: true,
		})
		return client, "cluster " + strings.Join(c.ClusterAddrs, ","), nil
	default:
		opt.ContextTimeoutEnabled = true
		return redis.NewClient(opt), opt.Addr, nil
	}
}

func defaultConsumerName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "worker"
	}
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), randomHex(4))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// String describes the connection without its credentials, so a connConfig
// printed by mistake (%v in a log line) never leaks the password.
func (c connConfig) String() string {
	opt, err := parseURL(c.URL)
	if err != nil {
		return "(invalid url)"
	}
	b, _ := json.Marshal(map[string]any{"addr": opt.Addr, "db": opt.DB, "tls": opt.TLSConfig != nil,
		"sentinel_master": c.SentinelMaster, "cluster_addrs": c.ClusterAddrs})
	return string(b)
}
