package wire

// Exported for tests.
var (
	DecodeMessageStd  = decodeMessageStd
	DecodeMessageFast = decodeMessageFast
	ValidJSON         = validJSON
	DecodeResultStd   = decodeResultStd
	DecodeResultFast  = decodeResultFast
)
