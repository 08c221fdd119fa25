package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskiq-go/taskiq/plugin/sdk/wire"
)

// TestLabelFlagTypes: --label n=7 is an int (labels_types 2, what Python's
// taskiq sends for an int), 2.5 and 7.0 are floats (4), text is a str (3),
// true a bool (5).
func TestLabelFlagTypes(t *testing.T) {
	t.Parallel()
	labels, err := parseLabels([]string{"n=7", "neg=-3", "f=2.5", "whole=7.0", "s=hello", "b=true", "big=1e3"})
	require.NoError(t, err)
	require.Equal(t, map[string]any{"n": int64(7), "neg": int64(-3), "f": 2.5, "whole": 7.0, "s": "hello", "b": true, "big": 1000.0}, labels)

	body, err := (&wire.Message{TaskID: "t", TaskName: "x", Labels: labels}).AppendJSON(nil)
	require.NoError(t, err)
	var sent struct {
		Labels      map[string]string `json:"labels"`
		LabelsTypes map[string]int    `json:"labels_types"`
	}
	require.NoError(t, json.Unmarshal(body, &sent))
	require.Equal(t, map[string]int{"n": wire.LabelInt, "neg": wire.LabelInt, "f": wire.LabelFloat, "whole": wire.LabelFloat,
		"s": wire.LabelStr, "b": wire.LabelBool, "big": wire.LabelFloat}, sent.LabelsTypes)
	require.Equal(t, "7", sent.Labels["n"], "as Python writes str(7)")

	_, err = parseLabels([]string{"nokey"})
	require.ErrorContains(t, err, "write it as key=value")
	none, err := parseLabels(nil)
	require.NoError(t, err)
	require.Nil(t, none)
}
