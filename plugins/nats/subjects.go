package taskiqnats

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/taskiq-go/taskiq/plugin/sdk"
	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// Headers of the messages this plugin writes besides the body.
const (
	hdrDue      = "Taskiq-Due"    // delayed kick: unix milliseconds it is due
	hdrTarget   = "Taskiq-Target" // delayed kick: the subject it moves to
	hdrReason   = "Taskiq-Reason" // dead letter: why
	hdrQueue    = "Taskiq-Queue"
	hdrAttempt  = "Taskiq-Attempt"
	hdrFailedAt = "Taskiq-Failed-At"
	hdrSeq      = "Taskiq-Stream-Seq"
)

// queueSubject is the subject of queue q: the configured subject for the
// default queue ("" or the subject itself), "<subject>.q" for the others.
func (o brokerOptions) queueSubject(q string) string {
	if q == "" || q == o.subject {
		return o.subject
	}
	return o.subject + "." + q
}

// queueName is how deliveries name their queue: the subject for the
// default queue, the queue's own name otherwise.
func (o brokerOptions) queueName(q string) string {
	if q == "" {
		return o.subject
	}
	return q
}

// consumerName is the durable consumer of queue q. Queue names may hold
// characters a consumer name may not (dots, wildcards); those become "_"
// and a short hash keeps two such names apart.
func (o brokerOptions) consumerName(q string) string {
	if q == "" || q == o.subject {
		return o.durable
	}
	clean := strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') {
			return r
		}
		return '_'
	}, q)
	if clean != q {
		sum := sha256.Sum256([]byte(q))
		clean += "_" + hex.EncodeToString(sum[:4])
	}
	return o.durable + "_" + clean
}

func (o brokerOptions) delaySubject() string { return o.subject + "_delayed" }
func (o brokerOptions) deadSubject() string  { return o.subject + "_dead" }
func (o brokerOptions) delayDurable() string { return o.durable + "_delayed" }

// validQueue checks that a queue name makes a valid subject.
func validQueue(q string) error {
	if q == "" {
		return nil
	}
	if strings.ContainsAny(q, " \t\r\n*>") || strings.HasPrefix(q, ".") || strings.HasSuffix(q, ".") || strings.Contains(q, "..") {
		return fmt.Errorf("queue name %q cannot be part of a NATS subject (no spaces, wildcards or empty tokens)", q)
	}
	return nil
}

// subjectMatches reports whether subject falls under filter, a subject
// with the wildcards "*" (one token) and ">" (the rest).
func subjectMatches(filter, subject string) bool {
	ft, st := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, f := range ft {
		if f == ">" {
			return len(st) > i
		}
		if i >= len(st) || (f != "*" && f != st[i]) {
			return false
		}
	}
	return len(ft) == len(st)
}

// covered reports whether one of a stream's subjects takes subject.
func covered(subjects []string, subject string) bool {
	for _, f := range subjects {
		if subjectMatches(f, subject) {
			return true
		}
	}
	return false
}

// msgID is the Nats-Msg-Id of a kick: the task id, so that the stream drops
// a second kick of the same task within its duplicate window (what makes a
// scheduler fire once across replicas). Retries and requeues send the same
// task id again on purpose; their counters (_retries, X-Taskiq-requeue) are
// appended, so they are never taken for duplicates. The body is only parsed
// when it mentions one of those labels.
func msgID(m sdk.Outgoing) string {
	if m.TaskID == "" {
		return ""
	}
	if !bytes.Contains(m.Body, []byte(wire.LabelRetries)) && !bytes.Contains(m.Body, []byte(wire.LabelRequeue)) {
		return m.TaskID
	}
	msg, err := wire.DecodeMessage(m.Body)
	if err != nil {
		return m.TaskID
	}
	id := m.TaskID
	if n, ok := msg.LabelInt(wire.LabelRetries); ok && n > 0 {
		id += "/retry-" + strconv.FormatInt(n, 10)
	}
	if n, ok := msg.LabelInt(wire.LabelRequeue); ok && n > 0 {
		id += "/requeue-" + strconv.FormatInt(n, 10)
	}
	return id
}

// ackRef is what a JetStream reply subject says about a delivery.
type ackRef struct {
	stream, consumer string
	delivered        int
	streamSeq        uint64
}

// parseAckReply reads a JetStream ack subject, in its two forms:
// $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending> and
// $JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>[.<token>].
func parseAckReply(reply string) (ackRef, bool) {
	t := strings.Split(reply, ".")
	if len(t) < 9 || t[0] != "$JS" || t[1] != "ACK" {
		return ackRef{}, false
	}
	base := 2
	if len(t) >= 11 {
		base = 4
	} else if len(t) != 9 {
		return ackRef{}, false
	}
	delivered, err1 := strconv.Atoi(t[base+2])
	seq, err2 := strconv.ParseUint(t[base+3], 10, 64)
	if err1 != nil || err2 != nil {
		return ackRef{}, false
	}
	return ackRef{stream: t[base], consumer: t[base+1], delivered: delivered, streamSeq: seq}, true
}
