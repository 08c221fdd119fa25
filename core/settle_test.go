package core

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// describe renders a plan as "early | save | final", each action as the
// broker would see it, with its warning after a "!".
func (p settlePlan) describe() string {
	save := "-"
	if p.save {
		save = "save"
	}
	return p.early.describe() + " | " + save + " | " + p.final.describe()
}

func (a settleAction) describe() string {
	var s string
	switch a.kind {
	case actNone:
		s = "-"
	case actAck:
		s = "ack"
	case actNack:
		s = fmt.Sprintf("nack(%v,%s)", a.delay, a.reason)
	case actDeadLetter:
		s = "dl(" + a.reason + ")"
	case actRequeue:
		s = "requeue"
	case actLeftToNewOwner:
		s = "lost(" + a.reason + ")"
	}
	if a.warn != "" {
		s += " !" + a.warn
	}
	return s
}

var ackTypes = []AckType{AckWhenReceived, AckWhenExecuted, AckWhenSaved, AckManual}

// TestPlanSettleEveryCell pins the settlement of every outcome under every
// ack type, with the message acked or not, lease held or lost.
func TestPlanSettleEveryCell(t *testing.T) {
	const (
		none     = "- | - | -"
		dlAcked  = "- | - | - !" + warnDeadLetterAcked
		ctlAcked = "- | - | - !" + warnControlAcked
		manual   = "nack(0s,not acked by the task) !" + warnManualNotAcked
	)
	// want[outcome][ack type][acked]: ack types in the order of ackTypes,
	// acked false then true.
	want := map[runOutcome][4][2]string{
		runStarting: {
			{"- | - | ack", none}, {none, none}, {none, none}, {none, none},
		},
		runInvalid: {
			{"- | - | dl(why)", dlAcked}, {"- | - | dl(why)", dlAcked},
			{"- | - | dl(why)", dlAcked}, {"- | - | dl(why)", dlAcked},
		},
		runOK: {
			{"- | save | ack", "- | save | -"}, {"ack | save | -", "- | save | -"},
			{"- | save | ack", "- | save | -"}, {"- | save | " + manual, "- | save | -"},
		},
		runFailed: {
			{"- | save | ack", "- | save | -"}, {"ack | save | -", "- | save | -"},
			{"- | save | ack", "- | save | -"}, {"- | save | " + manual, "- | save | -"},
		},
		runNoResult: {
			{"- | - | ack", none}, {"ack | - | -", none},
			{"- | - | ack", none}, {"- | - | " + manual, none},
		},
		runDeadLetter: {
			{"- | save | dl(why)", "- | save | - !" + warnDeadLetterAcked}, {"- | save | dl(why)", "- | save | - !" + warnDeadLetterAcked},
			{"- | save | dl(why)", "- | save | - !" + warnDeadLetterAcked}, {"- | save | dl(why)", "- | save | - !" + warnDeadLetterAcked},
		},
		runDeadLetterNoResult: {
			{"- | - | dl(why)", dlAcked}, {"- | - | dl(why)", dlAcked},
			{"- | - | dl(why)", dlAcked}, {"- | - | dl(why)", dlAcked},
		},
		runRequeue: {
			{"- | - | requeue", ctlAcked}, {"- | - | requeue", ctlAcked},
			{"- | - | requeue", ctlAcked}, {"- | - | requeue", ctlAcked},
		},
		runReject: {
			{"- | - | dl(rejected by the task)", ctlAcked}, {"- | - | dl(rejected by the task)", ctlAcked},
			{"- | - | dl(rejected by the task)", ctlAcked}, {"- | - | dl(rejected by the task)", ctlAcked},
		},
		runShutdown: {
			{none, none}, {none, none}, {none, none}, {none, none},
		},
		runUnsaved: {
			{"- | - | nack(1s,result not saved)", none}, {"- | - | nack(1s,result not saved)", none},
			{"- | - | nack(1s,result not saved)", none}, {"- | - | nack(1s,result not saved)", none},
		},
	}
	require.Len(t, want, len(runOutcomeNames), "every outcome has its row")
	// A lost lease keeps acks and turns what would send the message back
	// into nothing, keeping the warning.
	lost := strings.NewReplacer(
		"nack(0s,not acked by the task)", "lost(nack)",
		"nack(1s,result not saved)", "lost(nack)",
		"dl(why)", "lost(dead letter)",
		"dl(rejected by the task)", "lost(dead letter)",
		"| requeue", "| lost(requeue)",
	)
	for o, byAck := range want {
		for i, ack := range ackTypes {
			for j, acked := range []bool{false, true} {
				name := fmt.Sprintf("%s/%s/acked=%v", o, ack, acked)
				require.Equal(t, byAck[i][j], planSettle(o, "why", ack, acked, false).describe(), name)
				require.Equal(t, lost.Replace(byAck[i][j]), planSettle(o, "why", ack, acked, true).describe(), name+"/lease lost")
			}
		}
	}
}

// TestLeftToNewOwnerKeepsAcks: a lost lease does not hold back an ack.
func TestLeftToNewOwnerKeepsAcks(t *testing.T) {
	require.Equal(t, settleAction{kind: actAck}, settleAction{kind: actAck}.leftToNewOwner())
	require.Equal(t, settleAction{kind: actLeftToNewOwner, reason: "nack", warn: "w"},
		settleAction{kind: actNack, delay: time.Second, reason: "r", warn: "w"}.leftToNewOwner())
}
