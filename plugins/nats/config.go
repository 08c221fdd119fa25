package taskiqnats

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// Defaults of taskiq-nats' PullBasedJetStreamBroker, so that a Go worker
// and a Python one share a stream without configuration.
const (
	defaultURL     = "nats://127.0.0.1:4222"
	defaultSubject = "taskiq_tasks"
	defaultStream  = "taskiq_jetstream"
	defaultDurable = "taskiq_durable"
	defaultBucket  = "taskiq_results"
)

// connectionAttributes are shared by the broker and the result backend.
func connectionAttributes() []sdk.Attribute {
	return append([]sdk.Attribute{
		{Name: "servers", Type: sdk.TypeStringList, Default: []string{defaultURL}, Description: "NATS " +
			"server URLs (nats:// or tls://); the client connects to one of them and fails over to " +
			"the others. Credentials in a URL (nats://user:pass@host) work but prefer the attributes below."},
		{Name: "name", Type: sdk.TypeString, Default: "taskiq-go", Description: "Connection name shown " +
			"by the server's monitoring."},
		{Name: "token", Type: sdk.TypeString, Default: "", Sensitive: true, Description: "Token " +
			"authentication. Never logged."},
		{Name: "username", Type: sdk.TypeString, Default: "", Description: "User of user/password authentication."},
		{Name: "password", Type: sdk.TypeString, Default: "", Sensitive: true, Description: "Password of " +
			"user/password authentication. Never logged."},
		{Name: "nkey_seed", Type: sdk.TypeString, Default: "", Sensitive: true, Description: "NKey " +
			"seed (SU...) for nkey authentication. Never logged; prefer nkey_seed_file."},
		{Name: "nkey_seed_file", Type: sdk.TypeString, Default: "", Description: "File holding the " +
			"NKey seed for nkey authentication."},
		{Name: "creds_file", Type: sdk.TypeString, Default: "", Sensitive: true, Description: "Credentials " +
			"file (user JWT and NKey seed, as written by nsc) for decentralized authentication."},
		{Name: "connect_timeout", Type: sdk.TypeDuration, Default: "5s", Min: sdk.Seconds(time.Millisecond), Description: "Timeout of " +
			"one connection attempt."},
		{Name: "request_timeout", Type: sdk.TypeDuration, Default: "10s", Min: sdk.Seconds(time.Millisecond), Description: "Timeout of " +
			"one JetStream API call or publish acknowledgement."},
	}, sdk.TLSAttributes("Any of them turns TLS on, as tls:// server URLs do.")...)
}

func brokerSchema() sdk.Schema {
	attrs := connectionAttributes()
	attrs = append(attrs,
		sdk.Attribute{Name: "subject", Type: sdk.TypeString, Default: defaultSubject, Description: "Subject " +
			"of the default queue. A message whose queue_name label names queue q goes to " +
			"\"<subject>.q\" instead, consumed by its own durable consumer."},
		sdk.Attribute{Name: "stream", Type: sdk.TypeString, Default: defaultStream, Description: "JetStream " +
			"stream holding the queues. An existing stream is used as it is (never re-created or " +
			"changed); a missing one is created with subjects [\"<subject>\", \"<subject>.>\"] and " +
			"the retention below."},
		sdk.Attribute{Name: "durable", Type: sdk.TypeString, Default: defaultDurable, Description: "Durable " +
			"pull consumer of the default queue, shared by every worker; queue q uses \"<durable>_q\". " +
			"An existing consumer is used as it is: its ack_wait is the lease."},
		sdk.Attribute{Name: "retention", Type: sdk.TypeString, Default: "workqueue", Description: "Retention " +
			"of a stream this plugin creates: \"workqueue\" (a message is removed once acked, so the " +
			"stream holds only work not yet done) or \"limits\" (kept up to max_age, as a stream of " +
			"taskiq-nats' defaults)."},
		sdk.Attribute{Name: "storage", Type: sdk.TypeString, Default: "file", Description: "Storage " +
			"of the streams this plugin creates: \"file\" (survives a server restart) or \"memory\" " +
			"(faster; lost when the server stops)."},
		sdk.Attribute{Name: "max_age", Type: sdk.TypeDuration, Default: "0s", Description: "Max age " +
			"of messages in a stream this plugin creates (0s: no limit). Needed with retention " +
			"\"limits\", or the stream grows forever."},
		sdk.Attribute{Name: "ack_wait", Type: sdk.TypeDuration, Default: "30s", Min: sdk.Seconds(100 * time.Millisecond), Description: "AckWait " +
			"of consumers this plugin creates: the lease. A delivery not acked, nacked or extended " +
			"(InProgress) within it is redelivered. The lease a worker asks for is not used: a " +
			"JetStream consumer has one AckWait for all its workers, and deliveries report it."},
		sdk.Attribute{Name: "max_deliver", Type: sdk.TypeNumber, Default: 10, Integer: true, Min: sdk.Num(0), Description: "A message " +
			"delivered for a higher attempt is terminated and copied to the dead-letter stream with " +
			"reason \"exceeded max_deliver\". 0 disables the limit. Consumers this plugin creates have " +
			"no server-side limit, so no message is dropped by the server unseen."},
		sdk.Attribute{Name: "dead_letter_stream", Type: sdk.TypeString, Default: "", Description: "Stream " +
			"receiving dead letters (the body, with headers Taskiq-Reason, Taskiq-Queue, " +
			"Taskiq-Attempt, Taskiq-Failed-At, Taskiq-Stream-Seq) on subject \"<subject>_dead\". Empty " +
			"means \"<stream>_dead\". Created with limits retention and dead_letter_max_age."},
		sdk.Attribute{Name: "dead_letter_max_age", Type: sdk.TypeDuration, Default: "168h", Description: "Max " +
			"age of dead letters in a dead-letter stream this plugin creates (0s: kept forever)."},
		sdk.Attribute{Name: "delay_stream", Type: sdk.TypeString, Default: "", Description: "Stream " +
			"holding delayed kicks until they are due, on subject \"<subject>_delayed\". Empty means " +
			"\"<stream>_delayed\". Work-queue retention: a message leaves it when moved."},
		sdk.Attribute{Name: "fetch_wait", Type: sdk.TypeDuration, Default: "5s", Min: sdk.Seconds(10 * time.Millisecond), Description: "How long " +
			"one pull request waits on the server for messages before it is renewed."},
		sdk.Attribute{Name: "dedup", Type: sdk.TypeBool, Default: true, Description: "Publish a " +
			"kick that asks for deduplication (the scheduler's) with Nats-Msg-Id = task id, so the " +
			"stream drops a second kick of one task id within its duplicate window (2 minutes by " +
			"default, which caps the window a kick asks for); other kicks carry no id. A message " +
			"carrying _retries or X-Taskiq-requeue labels gets an id with those counts appended, so " +
			"retries and requeues are never dropped."},
	)
	return sdk.Schema{Attributes: attrs}
}

func resultSchema() sdk.Schema {
	attrs := connectionAttributes()
	attrs = append(attrs,
		sdk.Attribute{Name: "bucket", Type: sdk.TypeString, Default: defaultBucket, Description: "JetStream " +
			"key-value bucket of results; key = task id, progress under \"<task id>__progress\". An " +
			"existing bucket is used as it is; a missing one is created with result_ttl."},
		sdk.Attribute{Name: "result_ttl", Type: sdk.TypeDuration, Default: "0s", Description: "Max age " +
			"of the entries of a bucket this plugin creates (0s: kept forever)."},
		sdk.Attribute{Name: "keep_results", Type: sdk.TypeBool, Default: true, Description: "When false, " +
			"reading a result deletes it."},
		sdk.Attribute{Name: "poll_fallback", Type: sdk.TypeDuration, Default: "1s", Min: sdk.Seconds(time.Millisecond), Description: "WaitResult " +
			"is woken by a watch of the bucket; it re-reads the key at this interval as well, so an " +
			"update missed during a reconnect still completes the wait."},
		sdk.Attribute{Name: "serializer", Type: sdk.TypeString, Default: serializerJSON,
			Description: `How results and progress are stored: "json" (the default) or "pickle" ` +
				`(protocol 4 of the same values, as Python taskiq's default PickleSerializer writes ` +
				`them). Only plain data is read from a pickle (dict, list, str, int, float, bool, ` +
				`None); nothing a pickle names is imported or called. With "pickle", JSON values are ` +
				`still read.`},
	)
	return sdk.Schema{Attributes: attrs}
}

// connConfig is how to reach NATS.
type connConfig struct {
	Servers      []string `json:"servers"`
	Name         string   `json:"name"`
	Token        string   `json:"token"`
	Username     string   `json:"username"`
	Password     string   `json:"password"`
	NKeySeed     string   `json:"nkey_seed"`
	NKeySeedFile string   `json:"nkey_seed_file"`
	CredsFile    string   `json:"creds_file"`
	sdk.TLSFiles
	ConnectTimeout time.Duration `json:"connect_timeout"`
	RequestTimeout time.Duration `json:"request_timeout"`
}

// connOptions is the validated connection.
type connOptions struct {
	servers        []string
	opts           []nats.Option
	requestTimeout time.Duration
}

// String describes the servers without credentials.
func (c connOptions) String() string { return sdk.RedactURLs(strings.Join(c.servers, ",")) }

type brokerConfig struct {
	connConfig
	Subject          string        `json:"subject"`
	Stream           string        `json:"stream"`
	Durable          string        `json:"durable"`
	Retention        string        `json:"retention"`
	Storage          string        `json:"storage"`
	MaxAge           time.Duration `json:"max_age"`
	AckWait          time.Duration `json:"ack_wait"`
	MaxDeliver       int           `json:"max_deliver"`
	DeadLetterStream string        `json:"dead_letter_stream"`
	DeadLetterMaxAge time.Duration `json:"dead_letter_max_age"`
	DelayStream      string        `json:"delay_stream"`
	FetchWait        time.Duration `json:"fetch_wait"`
	Dedup            bool          `json:"dedup"`
}

// brokerOptions is the validated broker configuration.
type brokerOptions struct {
	subject, stream, durable string
	workQueue                bool
	memory                   bool
	maxAge                   time.Duration
	ackWait                  time.Duration
	maxDeliver               int
	deadStream               string
	deadMaxAge               time.Duration
	delayStream              string
	fetchWait                time.Duration
	dedup                    bool
}

type resultConfig struct {
	connConfig
	Bucket       string        `json:"bucket"`
	ResultTTL    time.Duration `json:"result_ttl"`
	KeepResults  bool          `json:"keep_results"`
	PollFallback time.Duration `json:"poll_fallback"`
	Serializer   string        `json:"serializer"`
}

type resultOptions struct {
	bucket       string
	ttl          time.Duration
	keepResults  bool
	pollFallback time.Duration
	serializer   string // serializerJSON or serializerPickle
}

// validName checks a stream, consumer or bucket name: JetStream refuses
// names with whitespace, dots, wildcards or path separators.
func validName(attr, v string, errs *[]error) {
	if v == "" || strings.ContainsAny(v, " \t\r\n.*>/\\") {
		*errs = append(*errs, sdk.AttrError(attr, "%q is not a valid JetStream name: use letters, digits, \"-\" and \"_\"", v))
	}
}

// validSubject checks a literal subject (no wildcards, no empty tokens).
func validSubject(attr, v string, errs *[]error) {
	if v == "" || strings.ContainsAny(v, " \t\r\n*>") || strings.HasPrefix(v, ".") || strings.HasSuffix(v, ".") || strings.Contains(v, "..") {
		*errs = append(*errs, sdk.AttrError(attr, "%q is not a valid subject: use tokens of letters, digits, \"-\" and \"_\" separated by dots, without wildcards", v))
	}
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func decodeBrokerConfig(cfg sdk.Config) (connOptions, brokerOptions, error) {
	// A value the schema refuses gives way to its default, so the rest is
	// still checked and every problem reported at once.
	var c brokerConfig
	errs := []error{brokerSchema().Decode(cfg, &c)}
	o := brokerOptions{subject: or(c.Subject, defaultSubject), stream: or(c.Stream, defaultStream),
		durable: or(c.Durable, defaultDurable), maxAge: c.MaxAge, ackWait: c.AckWait, maxDeliver: c.MaxDeliver,
		deadMaxAge: c.DeadLetterMaxAge, fetchWait: c.FetchWait, dedup: c.Dedup}
	validSubject("subject", o.subject, &errs)
	validName("stream", o.stream, &errs)
	validName("durable", o.durable, &errs)
	o.deadStream = or(c.DeadLetterStream, o.stream+"_dead")
	validName("dead_letter_stream", o.deadStream, &errs)
	o.delayStream = or(c.DelayStream, o.stream+"_delayed")
	validName("delay_stream", o.delayStream, &errs)
	switch c.Retention {
	case "", "workqueue":
		o.workQueue = true
	case "limits":
	default:
		errs = append(errs, sdk.AttrError("retention", "unknown retention %q; use \"workqueue\" or \"limits\"", c.Retention))
	}
	switch c.Storage {
	case "", "file":
	case "memory":
		o.memory = true
	default:
		errs = append(errs, sdk.AttrError("storage", "unknown storage %q; use \"file\" or \"memory\"", c.Storage))
	}
	conn, cerrs := validateConn(c.connConfig)
	errs = append(errs, cerrs...)
	if err := errors.Join(errs...); err != nil {
		return connOptions{}, brokerOptions{}, err
	}
	return conn, o, nil
}

func decodeResultConfig(cfg sdk.Config) (connOptions, resultOptions, error) {
	var c resultConfig
	errs := []error{resultSchema().Decode(cfg, &c)}
	o := resultOptions{bucket: or(c.Bucket, defaultBucket), ttl: c.ResultTTL, keepResults: c.KeepResults,
		pollFallback: c.PollFallback}
	if o.bucket == "" || strings.ContainsAny(o.bucket, " \t\r\n.*>/\\") {
		errs = append(errs, sdk.AttrError("bucket", "%q is not a valid bucket name: use letters, digits, \"-\" and \"_\"", o.bucket))
	}
	switch o.serializer = or(c.Serializer, serializerJSON); o.serializer {
	case serializerJSON, serializerPickle:
	default:
		errs = append(errs, sdk.AttrError("serializer", "unknown serializer %q; use \"json\" or \"pickle\"", o.serializer))
	}
	conn, cerrs := validateConn(c.connConfig)
	errs = append(errs, cerrs...)
	if err := errors.Join(errs...); err != nil {
		return connOptions{}, resultOptions{}, err
	}
	return conn, o, nil
}

// validateConn checks the connection attributes and turns them into
// nats.Options. Files are read here, so a wrong path is reported against its
// attribute instead of as a connection failure later.
func validateConn(c connConfig) (connOptions, []error) {
	var errs []error
	servers := c.Servers
	if len(servers) == 0 {
		servers = []string{defaultURL}
	}
	useTLS := false
	for _, s := range servers {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			errs = append(errs, sdk.AttrError("servers", "%s is not a NATS URL; write it like nats://host:4222", sdk.RedactURLs(s)))
			continue
		}
		switch u.Scheme {
		case "nats":
		case "tls":
			useTLS = true
		default:
			errs = append(errs, sdk.AttrError("servers", "%s: unknown scheme %q; use nats:// or tls://", sdk.RedactURLs(s), u.Scheme))
		}
	}
	o := connOptions{servers: servers}
	o.opts = append(o.opts, nats.Name(or(c.Name, "taskiq-go")),
		// Reconnect forever: a stream rides out a server restart.
		nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond),
		nats.RetryOnFailedConnect(false))
	o.opts = append(o.opts, nats.Timeout(c.ConnectTimeout))
	o.requestTimeout = c.RequestTimeout

	auth := map[string]bool{"token": c.Token != "", "username": c.Username != "" || c.Password != "",
		"nkey_seed": c.NKeySeed != "" || c.NKeySeedFile != "", "creds_file": c.CredsFile != ""}
	n := 0
	for _, set := range auth {
		if set {
			n++
		}
	}
	if n > 1 {
		errs = append(errs, sdk.AttrError("token", "set one authentication method: token, username/password, nkey_seed(_file) or creds_file"))
	}
	switch {
	case c.Token != "":
		o.opts = append(o.opts, nats.Token(c.Token))
	case c.Username != "" || c.Password != "":
		if c.Username == "" {
			errs = append(errs, sdk.AttrError("username", "password is set, so give the user name here"))
		}
		o.opts = append(o.opts, nats.UserInfo(c.Username, c.Password))
	case c.NKeySeed != "" && c.NKeySeedFile != "":
		errs = append(errs, sdk.AttrError("nkey_seed_file", "set nkey_seed or nkey_seed_file, not both"))
	case c.NKeySeed != "" || c.NKeySeedFile != "":
		opt, err := nkeyOption(c.NKeySeed, c.NKeySeedFile)
		if err != nil {
			attr := "nkey_seed"
			if c.NKeySeedFile != "" {
				attr = "nkey_seed_file"
			}
			errs = append(errs, sdk.AttrError(attr, "%v", err))
		} else {
			o.opts = append(o.opts, opt)
		}
	case c.CredsFile != "":
		if err := checkCredsFile(c.CredsFile); err != nil {
			errs = append(errs, sdk.AttrError("creds_file", "%v", err))
		}
		o.opts = append(o.opts, nats.UserCredentials(c.CredsFile))
	}

	if c.TLSFiles.Set() {
		useTLS = true
	}
	if useTLS {
		cfg, terrs := sdk.ClientTLS(nil, c.TLSFiles)
		errs = append(errs, terrs...)
		o.opts = append(o.opts, nats.Secure(cfg))
	}
	return o, errs
}

// checkCredsFile reads a credentials file as the client will when it
// connects: a user JWT and the user's NKey seed, each between its nsc
// markers. A file without them (empty, garbage, a bare JWT) or whose seed
// does not belong to the JWT's user is an error naming the file, instead of
// a refused connection later. Expiry is left to the server, which refuses an
// expired JWT with an authorization error.
func checkCredsFile(file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("cannot read the credentials file: %w", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return fmt.Errorf("the credentials file %s is empty; it must hold a user JWT and its NKey seed (as nsc writes them)", file)
	}
	tok, err := jwt.ParseDecoratedJWT(b)
	if err != nil {
		return fmt.Errorf("the credentials file %s holds no user JWT: %w", file, err)
	}
	claims, err := jwt.DecodeUserClaims(tok)
	if err != nil {
		return fmt.Errorf("the credentials file %s holds no valid user JWT (between -----BEGIN NATS USER JWT----- markers): %w", file, err)
	}
	kp, err := jwt.ParseDecoratedUserNKey(b)
	if err != nil {
		return fmt.Errorf("the credentials file %s holds no user NKey seed (between -----BEGIN USER NKEY SEED----- markers): %w", file, err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return fmt.Errorf("the credentials file %s: invalid NKey seed: %w", file, err)
	}
	if pub != claims.Subject {
		return fmt.Errorf("the credentials file %s: its seed (user %s) does not belong to its JWT (user %s)", file, pub, claims.Subject)
	}
	return nil
}

// nkeyOption signs the server's nonce with the seed, given inline or in a file.
func nkeyOption(seed, file string) (nats.Option, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("cannot read the seed file: %w", err)
		}
		seed = strings.TrimSpace(string(b))
	}
	kp, err := nkeys.FromSeed([]byte(seed))
	if err != nil {
		return nil, fmt.Errorf("not a valid NKey seed (it starts with \"SU\"): %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("not a valid NKey seed: %w", err)
	}
	return nats.Nkey(pub, func(nonce []byte) ([]byte, error) { return kp.Sign(nonce) }), nil
}
