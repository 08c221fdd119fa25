package taskiqrabbitmq

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/taskiq-go/taskiq/plugin/sdk"
)

// Layouts (the compat attribute).
const (
	compatNative = ""
	compat05     = "aio-pika-0.5"
	compat06     = "aio-pika-0.6"
)

// Queue types.
const (
	queueQuorum  = "quorum"
	queueClassic = "classic"
)

const defaultURL = "amqp://guest:guest@127.0.0.1:5672/"

// defaultDeliveryLimit is the x-delivery-limit of the native layout's
// quorum queues: a message whose consumer died this many times (a poison
// message crashing its worker) goes to the dead-letter queue.
const defaultDeliveryLimit = 20

func brokerSchema() sdk.Schema {
	return sdk.Schema{Attributes: append([]sdk.Attribute{
		{Name: "url", Type: sdk.TypeString, Default: defaultURL, Description: "AMQP URL: " +
			"amqp://user:password@host:port/vhost, or amqps://host:5671/vhost for TLS (verified against " +
			"the system's trust store unless tls_ca_file is set). The password of the URL is never " +
			"logged; prefer the password attribute (from env())."},
		{Name: "password", Type: sdk.TypeString, Default: "", Sensitive: true, Description: "Password; " +
			"overrides the password of the URL when set. Never logged."},
		{Name: "compat", Type: sdk.TypeString, Default: compatNative, Description: `Queue layout: "" ` +
			`(native: durable quorum queues with x-delivery-limit), "aio-pika-0.6" (the declarations of ` +
			`taskiq-aio-pika 0.6) or "aio-pika-0.5" (those of taskiq-aio-pika 0.5 and older). See the ` +
			`plugin README for the exact declarations.`},
		{Name: "exchange", Type: sdk.TypeString, Default: "taskiq", Description: "Topic exchange messages " +
			"are published to."},
		{Name: "queue", Type: sdk.TypeString, Default: "taskiq", Description: "Default queue. The " +
			"queue_name label of a message overrides it per message."},
		{Name: "dead_letter_queue", Type: sdk.TypeString, Default: "", Description: "Queue receiving " +
			"dead-lettered messages; empty means \"<queue>.dead_letter\" (as taskiq-aio-pika)."},
		{Name: "delay_queue", Type: sdk.TypeString, Default: "", Description: "The per-message-TTL delay " +
			"queue Python producers publish delayed messages to. aio-pika-0.5 always declares " +
			"\"<queue>.delay\"; aio-pika-0.6 declares it only when set (its delay_queue=Queue(name=...)). " +
			"This plugin's own delays never use it: they go through one TTL queue per delay bucket."},
		{Name: "queue_type", Type: sdk.TypeString, Default: "", Description: `"quorum" or "classic"; ` +
			`empty means the layout's (classic for aio-pika-0.5, quorum otherwise) and adopts the type of ` +
			`a queue that already exists. Set explicitly, a queue of another type fails the start.`},
		{Name: "max_priority", Type: sdk.TypeNumber, Default: 0, Integer: true, Min: sdk.Num(0), Max: sdk.Num(255), Description: "x-max-priority of " +
			"classic queues (1-255): messages with a priority label are delivered highest first. 0 " +
			"declares none and adopts the one of an existing queue. Quorum queues of RabbitMQ 3.x have " +
			"no priorities."},
		{Name: "delivery_limit", Type: sdk.TypeNumber, Default: 0, Integer: true, Min: sdk.Num(0), Max: sdk.Num(1 << 30), Description: "x-delivery-limit of " +
			"quorum queues: after this many deliveries whose consumer died or gave the message back " +
			"the server dead-letters it. 0 means the layout's (20 native, none for the aio-pika " +
			"layouts, as Python declares none) and adopts the one of an existing queue."},
		{Name: "queue_expires", Type: sdk.TypeDuration, Default: "0s", Description: "x-expires of the " +
			"task and dead-letter queues this plugin declares: the server deletes a queue nobody " +
			"consumed from or declared for this long, with its messages. 0s (the default) never " +
			"expires them; for short-lived queues such as tests."},
		{Name: "publish_timeout", Type: sdk.TypeDuration, Default: "30s", Min: sdk.Seconds(time.Millisecond), Description: "How long a kick " +
			"waits for the server's publisher confirms before it fails."},
		{Name: "unavailable_after", Type: sdk.TypeDuration, Default: "10s", Min: sdk.Seconds(time.Second), Description: "How long the " +
			"server may stay unreachable before a delivery stream ends with an error wrapping " +
			"ErrUnavailable (the worker reopens it and reports itself not ready meanwhile)."},
	}, sdk.TLSAttributes("Needs an amqps:// url.")...)}
}

// brokerConfig is the decoded config block, the schema's defaults applied.
type brokerConfig struct {
	URL      string `json:"url"`
	Password string `json:"password"`
	sdk.TLSFiles
	Compat           string        `json:"compat"`
	Exchange         string        `json:"exchange"`
	Queue            string        `json:"queue"`
	DeadLetterQueue  string        `json:"dead_letter_queue"`
	DelayQueue       string        `json:"delay_queue"`
	QueueType        string        `json:"queue_type"`
	MaxPriority      int           `json:"max_priority"`
	DeliveryLimit    int           `json:"delivery_limit"`
	QueueExpires     time.Duration `json:"queue_expires"`
	PublishTimeout   time.Duration `json:"publish_timeout"`
	UnavailableAfter time.Duration `json:"unavailable_after"`
}

// options is the validated configuration.
type options struct {
	url        string      // with the password attribute applied
	addr       string      // host:port/vhost, for messages (no credentials)
	tls        *tls.Config // nil: none, or what an amqps:// url alone gives
	compat     string
	exchange   string
	queue      string
	deadLetter string
	delayQueue string
	// queueType, maxPriority and deliveryLimit are what the config asks
	// for; the *Explicit flags say whether the user set them (an existing
	// queue must then match) or they are the layout's (adopted from an
	// existing queue).
	queueType        string
	queueTypeSet     bool
	maxPriority      int
	deliveryLimit    int
	deliveryLimitSet bool
	queueExpires     time.Duration
	publishTimeout   time.Duration
	unavailableAfter time.Duration
}

func decodeConfig(cfg sdk.Config) (options, error) {
	// A value the schema refuses gives way to its default, so the rest is
	// still checked and every problem reported at once.
	var c brokerConfig
	errs := []error{brokerSchema().Decode(cfg, &c)}
	o := options{compat: c.Compat, exchange: c.Exchange, queue: c.Queue, deadLetter: c.DeadLetterQueue, delayQueue: c.DelayQueue}
	switch o.compat {
	case compatNative, compat05, compat06:
	default:
		errs = append(errs, sdk.AttrError("compat", "unknown layout %q; use \"\", %q or %q", o.compat, compat06, compat05))
	}
	if c.URL == "" {
		c.URL = defaultURL
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "amqp" && u.Scheme != "amqps") || u.Host == "" {
		errs = append(errs, sdk.AttrError("url", "%q is not an AMQP URL; write it like amqp://user:password@host:5672/vhost", redactURL(c.URL)))
	} else {
		if c.Password != "" {
			user := "guest"
			if u.User != nil {
				user = u.User.Username()
			}
			u.User = url.UserPassword(user, c.Password)
		}
		o.url = u.String()
		o.addr = u.Host + u.EscapedPath()
		var terrs []error
		o.tls, terrs = buildTLS(c, u.Scheme == "amqps")
		errs = append(errs, terrs...)
	}
	if o.exchange == "" {
		o.exchange = "taskiq"
	}
	if o.queue == "" {
		o.queue = "taskiq"
	}
	if o.deadLetter == "" {
		o.deadLetter = o.queue + ".dead_letter"
	}
	if o.compat == compat05 && o.delayQueue == "" {
		o.delayQueue = o.queue + ".delay"
	}
	switch c.QueueType {
	case "":
		o.queueType = queueQuorum
		if o.compat == compat05 {
			o.queueType = queueClassic
		}
	case queueQuorum, queueClassic:
		o.queueType, o.queueTypeSet = c.QueueType, true
	default:
		errs = append(errs, sdk.AttrError("queue_type", "unknown queue type %q; use \"quorum\" or \"classic\"", c.QueueType))
	}
	o.maxPriority, o.deliveryLimit = c.MaxPriority, c.DeliveryLimit
	o.deliveryLimitSet = o.deliveryLimit > 0
	if o.deliveryLimit == 0 && o.compat == compatNative {
		o.deliveryLimit = defaultDeliveryLimit
	}
	if o.maxPriority > 0 && o.queueType == queueQuorum && o.queueTypeSet {
		errs = append(errs, sdk.AttrError("max_priority", "quorum queues of RabbitMQ 3.x have no priorities; set queue_type = \"classic\" or drop max_priority"))
	}
	if o.maxPriority > 0 && !o.queueTypeSet {
		o.queueType = queueClassic // priorities need a classic queue
	}
	o.queueExpires, o.publishTimeout, o.unavailableAfter = c.QueueExpires, c.PublishTimeout, c.UnavailableAfter
	if o.queueExpires > 0 && o.queueExpires < time.Second {
		errs = append(errs, sdk.AttrError("queue_expires", "must be 0s or at least 1s, got %s", o.queueExpires))
	}
	if err := errors.Join(errs...); err != nil {
		return options{}, err
	}
	return o, nil
}

// buildTLS is the TLS configuration of the tls_* attributes: nil when none
// is set (an amqps:// url then verifies against the system's trust store).
func buildTLS(c brokerConfig, amqps bool) (*tls.Config, []error) {
	switch {
	case !amqps:
		return nil, c.RefuseWithoutTLS("write the url as amqps://host:5671/vhost")
	case !c.TLSFiles.Set():
		return nil, nil
	}
	return sdk.ClientTLS(nil, c.TLSFiles)
}

// redactURL hides the password of an AMQP URL.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return fmt.Sprint(u)
}
