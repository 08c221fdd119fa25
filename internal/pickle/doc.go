// Package pickle reads and writes the plain-data subset of Python's pickle
// format that Python taskiq stores: what `model_dump(mode="json")` gives
// (dicts with str keys, lists, str, int of any size, float, bool, None).
// taskiq-redis's result backend pickles its values by default, so a Go
// service beside Python services on their defaults reads and writes these.
//
// Decoding is data only. Nothing a pickle names is ever looked up,
// imported or called: the opcodes that name or build objects (GLOBAL,
// STACK_GLOBAL, REDUCE, BUILD, INST, OBJ, NEWOBJ, NEWOBJ_EX, EXT*,
// PERSID, ...) and those of other types (bytes, sets, ...) are refused with
// an error that wraps [ErrUnsupported]; broken input wraps [ErrMalformed].
// Decoding keeps dict keys in pickle order ([ToJSON]) and bounds the work a
// pickle can cause (nesting depth, the size of what shared references
// expand to, int sizes).
//
// Encoding writes protocol 4 the way CPython's pickler does for such
// values (memoized strings, dicts and lists, batches of 1000 items, 64 KiB
// frames, large strings outside frames), so [FromJSON] of the JSON Python
// taskiq would have stored gives the bytes Python stores.
//
// github.com/kisielk/og-rek was evaluated first and not used: its decoder
// builds values for GLOBAL/REDUCE instead of refusing them and loses dict
// order, and its encoder writes neither frames nor memo entries and emits
// map keys in random order, so its bytes never match Python's.
package pickle
