package pickle

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"unicode/utf8"
)

var (
	// ErrUnsupported is wrapped by the errors for opcodes outside the plain
	// data subset (anything that names, builds or calls an object, and
	// types JSON has no form for).
	ErrUnsupported = errors.New("pickle: unsupported")
	// ErrMalformed is wrapped by the errors for input that is not a valid
	// pickle of plain data (truncated, bad stack use, non-str dict keys,
	// invalid UTF-8, limits exceeded).
	ErrMalformed = errors.New("pickle: malformed")
)

// Limits on what one pickle may cost to decode.
const (
	maxDepth     = 1000 // nesting of dicts and lists
	maxLongBytes = 2048 // about 4900 decimal digits (Python prints at most 4300)
	// A pickle may refer to one value many times (Python shares interned
	// strings, such as dict keys); what the references
	// expand to is bounded by expandFactor times the input plus expandSlack.
	expandFactor = 16
	expandSlack  = 1 << 20
)

// Opcodes of the subset, by their byte.
const (
	opMark           = '('
	opStop           = '.'
	opPop            = '0'
	opPopMark        = '1'
	opDup            = '2'
	opBinInt         = 'J'
	opBinInt1        = 'K'
	opBinInt2        = 'M'
	opNone           = 'N'
	opBinUnicode     = 'X'
	opAppend         = 'a'
	opAppends        = 'e'
	opBinGet         = 'h'
	opLongBinGet     = 'j'
	opList           = 'l'
	opEmptyList      = ']'
	opBinPut         = 'q'
	opLongBinPut     = 'r'
	opSetItem        = 's'
	opTuple          = 't'
	opEmptyTuple     = ')'
	opSetItems       = 'u'
	opDict           = 'd'
	opEmptyDict      = '}'
	opBinFloat       = 'G'
	opProto          = 0x80
	opTuple1         = 0x85
	opTuple2         = 0x86
	opTuple3         = 0x87
	opNewTrue        = 0x88
	opNewFalse       = 0x89
	opLong1          = 0x8a
	opLong4          = 0x8b
	opShortBinUnicod = 0x8c
	opBinUnicode8    = 0x8d
	opMemoize        = 0x94
	opFrame          = 0x95
)

// Names of the opcodes that are refused, for the error message.
var refusedNames = map[byte]string{
	'c': "GLOBAL", 0x93: "STACK_GLOBAL", 'R': "REDUCE", 'b': "BUILD", 'i': "INST",
	'o': "OBJ", 0x81: "NEWOBJ", 0x92: "NEWOBJ_EX", 0x82: "EXT1", 0x83: "EXT2",
	0x84: "EXT4", 'P': "PERSID", 'Q': "BINPERSID", 'B': "BINBYTES", 'C': "SHORT_BINBYTES",
	0x8e: "BINBYTES8", 0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER",
	0x8f: "EMPTY_SET", 0x90: "ADDITEMS", 0x91: "FROZENSET", 'S': "STRING",
	'T': "BINSTRING", 'U': "SHORT_BINSTRING", 'V': "UNICODE", 'I': "INT", 'L': "LONG",
	'F': "FLOAT", 'g': "GET", 'p': "PUT",
}

// Decoded values before conversion: str, int64, *big.Int, float64, bool,
// nil, *list, *dict, tuple. Lists and dicts are pointers because a pickle
// may refer to one (through the memo) and change it afterwards.
type (
	list  struct{ items []any }
	tuple []any
	dict  struct {
		keys  []string
		vals  []any
		index map[string]int
	}
)

func (d *dict) set(k string, v any) {
	if i, ok := d.index[k]; ok {
		d.vals[i] = v // Python keeps the first position of a key
		return
	}
	if d.index == nil {
		d.index = map[string]int{}
	}
	d.index[k] = len(d.keys)
	d.keys = append(d.keys, k)
	d.vals = append(d.vals, v)
}

type decoder struct {
	data  []byte
	pos   int
	stack []any
	marks []int
	memo  map[uint32]any
}

func malformed(pos int, format string, args ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", ErrMalformed, pos, fmt.Sprintf(format, args...))
}

// parse runs the pickle machine over data and returns the top value.
func parse(data []byte) (any, error) {
	d := &decoder{data: data, memo: map[uint32]any{}}
	for {
		if d.pos >= len(d.data) {
			return nil, malformed(d.pos, "truncated: no STOP opcode")
		}
		at := d.pos
		op := d.data[d.pos]
		d.pos++
		done, err := d.step(at, op)
		if err != nil {
			return nil, err
		}
		if done {
			if len(d.stack) != 1 || len(d.marks) != 0 {
				return nil, malformed(at, "STOP with %d values and %d marks on the stack, want 1 and 0", len(d.stack), len(d.marks))
			}
			if d.pos != len(d.data) {
				return nil, malformed(d.pos, "%d bytes after STOP", len(d.data)-d.pos)
			}
			return d.stack[0], nil
		}
	}
}

func (d *decoder) take(at, n int) ([]byte, error) {
	if n < 0 || n > len(d.data)-d.pos {
		return nil, malformed(at, "truncated: %d bytes wanted, %d left", n, len(d.data)-d.pos)
	}
	b := d.data[d.pos : d.pos+n]
	d.pos += n
	return b, nil
}

func (d *decoder) push(v any) { d.stack = append(d.stack, v) }

// floor is the lowest stack index the current mark lets an opcode pop.
func (d *decoder) floor() int {
	if len(d.marks) == 0 {
		return 0
	}
	return d.marks[len(d.marks)-1]
}

func (d *decoder) pop(at int) (any, error) {
	if len(d.stack) <= d.floor() {
		return nil, malformed(at, "stack underflow")
	}
	v := d.stack[len(d.stack)-1]
	d.stack = d.stack[:len(d.stack)-1]
	return v, nil
}

func (d *decoder) top(at int) (any, error) {
	if len(d.stack) <= d.floor() {
		return nil, malformed(at, "stack underflow")
	}
	return d.stack[len(d.stack)-1], nil
}

// popMark returns the values above the last mark and removes them and it.
func (d *decoder) popMark(at int) ([]any, error) {
	if len(d.marks) == 0 {
		return nil, malformed(at, "no MARK on the stack")
	}
	m := d.marks[len(d.marks)-1]
	d.marks = d.marks[:len(d.marks)-1]
	items := append([]any(nil), d.stack[m:]...)
	d.stack = d.stack[:m]
	return items, nil
}

func (d *decoder) uint(at, n int) (uint64, error) {
	b, err := d.take(at, n)
	if err != nil {
		return 0, err
	}
	var v uint64
	for i := n - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v, nil
}

func (d *decoder) str(at, lenBytes int) error {
	n, err := d.uint(at, lenBytes)
	if err != nil {
		return err
	}
	if n > uint64(len(d.data)) {
		return malformed(at, "truncated: string of %d bytes", n)
	}
	b, err := d.take(at, int(n))
	if err != nil {
		return err
	}
	if !utf8.Valid(b) {
		return malformed(at, "string is not valid UTF-8 (lone surrogates are not supported)")
	}
	d.push(string(b))
	return nil
}

func (d *decoder) long(at int, b []byte) {
	if len(b) <= 8 {
		var v uint64
		for i := len(b) - 1; i >= 0; i-- {
			v = v<<8 | uint64(b[i])
		}
		if n := len(b); n > 0 && n < 8 && b[n-1]&0x80 != 0 {
			v |= ^uint64(0) << (8 * n) // sign-extend
		}
		d.push(int64(v))
		return
	}
	// Two's complement, little-endian.
	be := make([]byte, len(b))
	for i := range b {
		be[len(b)-1-i] = b[i]
	}
	x := new(big.Int).SetBytes(be)
	if b[len(b)-1]&0x80 != 0 {
		x.Sub(x, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	if x.IsInt64() {
		d.push(x.Int64())
		return
	}
	d.push(x)
}

func (d *decoder) memoGet(at int, idx uint32) error {
	v, ok := d.memo[idx]
	if !ok {
		return malformed(at, "memo entry %d not defined", idx)
	}
	d.push(v)
	return nil
}

func (d *decoder) memoPut(at int, idx uint32) error {
	v, err := d.top(at)
	if err != nil {
		return err
	}
	d.memo[idx] = v
	return nil
}

func (d *decoder) setItems(at int, target any, kv []any) error {
	dt, ok := target.(*dict)
	if !ok {
		return fmt.Errorf("%w: at byte %d: SETITEM(S) on a %s, not a dict", ErrUnsupported, at, typeName(target))
	}
	if len(kv)%2 != 0 {
		return malformed(at, "odd number of values for dict items")
	}
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			return fmt.Errorf("%w: at byte %d: dict key of type %s; only str keys are supported", ErrUnsupported, at, typeName(kv[i]))
		}
		dt.set(k, kv[i+1])
	}
	return nil
}

func (d *decoder) appendItems(at int, target any, items []any) error {
	l, ok := target.(*list)
	if !ok {
		return fmt.Errorf("%w: at byte %d: APPEND(S) on a %s, not a list", ErrUnsupported, at, typeName(target))
	}
	l.items = append(l.items, items...)
	return nil
}

// step runs one opcode; done is true at STOP.
func (d *decoder) step(at int, op byte) (done bool, err error) {
	switch op {
	case opProto:
		v, err := d.take(at, 1)
		if err != nil {
			return false, err
		}
		if v[0] < 2 || v[0] > 5 {
			return false, fmt.Errorf("%w: at byte %d: pickle protocol %d (2 to 5 are read)", ErrUnsupported, at, v[0])
		}
	case opFrame:
		n, err := d.uint(at, 8)
		if err != nil {
			return false, err
		}
		if n > uint64(len(d.data)-d.pos) {
			return false, malformed(at, "truncated: frame of %d bytes, %d left", n, len(d.data)-d.pos)
		}
	case opStop:
		return true, nil
	case opMark:
		d.marks = append(d.marks, len(d.stack))
	case opPop:
		if len(d.stack) > d.floor() {
			_, err = d.pop(at)
		} else {
			_, err = d.popMark(at)
		}
	case opPopMark:
		_, err = d.popMark(at)
	case opDup:
		var v any
		if v, err = d.top(at); err == nil {
			d.push(v)
		}
	case opNone:
		d.push(nil)
	case opNewTrue:
		d.push(true)
	case opNewFalse:
		d.push(false)
	case opBinInt:
		var v uint64
		if v, err = d.uint(at, 4); err == nil {
			d.push(int64(int32(uint32(v))))
		}
	case opBinInt1:
		var v uint64
		if v, err = d.uint(at, 1); err == nil {
			d.push(int64(v))
		}
	case opBinInt2:
		var v uint64
		if v, err = d.uint(at, 2); err == nil {
			d.push(int64(v))
		}
	case opLong1, opLong4:
		w := 1
		if op == opLong4 {
			w = 4
		}
		var n uint64
		if n, err = d.uint(at, w); err != nil {
			return false, err
		}
		if op == opLong4 && int32(uint32(n)) < 0 {
			return false, malformed(at, "LONG4 with a negative length")
		}
		if n > maxLongBytes {
			return false, malformed(at, "int of %d bytes exceeds the %d-byte limit", n, maxLongBytes)
		}
		var b []byte
		if b, err = d.take(at, int(n)); err == nil {
			d.long(at, b)
		}
	case opBinFloat:
		var b []byte
		if b, err = d.take(at, 8); err == nil {
			d.push(math.Float64frombits(binary.BigEndian.Uint64(b)))
		}
	case opShortBinUnicod:
		err = d.str(at, 1)
	case opBinUnicode:
		err = d.str(at, 4)
	case opBinUnicode8:
		err = d.str(at, 8)
	case opEmptyDict:
		d.push(&dict{})
	case opEmptyList:
		d.push(&list{})
	case opEmptyTuple:
		d.push(tuple{})
	case opTuple1, opTuple2, opTuple3:
		n := int(op-opTuple1) + 1
		if len(d.stack)-d.floor() < n {
			return false, malformed(at, "stack underflow")
		}
		t := append(tuple(nil), d.stack[len(d.stack)-n:]...)
		d.stack = d.stack[:len(d.stack)-n]
		d.push(t)
	case opTuple:
		var items []any
		if items, err = d.popMark(at); err == nil {
			d.push(tuple(items))
		}
	case opList:
		var items []any
		if items, err = d.popMark(at); err == nil {
			d.push(&list{items: items})
		}
	case opDict:
		var items []any
		if items, err = d.popMark(at); err == nil {
			dt := &dict{}
			if err = d.setItems(at, dt, items); err == nil {
				d.push(dt)
			}
		}
	case opSetItem:
		var k, v, target any
		if v, err = d.pop(at); err != nil {
			return false, err
		}
		if k, err = d.pop(at); err != nil {
			return false, err
		}
		if target, err = d.top(at); err == nil {
			err = d.setItems(at, target, []any{k, v})
		}
	case opSetItems, opAppends:
		var items []any
		var target any
		if items, err = d.popMark(at); err != nil {
			return false, err
		}
		if target, err = d.top(at); err != nil {
			return false, err
		}
		if op == opSetItems {
			err = d.setItems(at, target, items)
		} else {
			err = d.appendItems(at, target, items)
		}
	case opAppend:
		var v, target any
		if v, err = d.pop(at); err != nil {
			return false, err
		}
		if target, err = d.top(at); err == nil {
			err = d.appendItems(at, target, []any{v})
		}
	case opMemoize:
		err = d.memoPut(at, uint32(len(d.memo)))
	case opBinPut, opLongBinPut, opBinGet, opLongBinGet:
		w := 1
		if op == opLongBinPut || op == opLongBinGet {
			w = 4
		}
		var idx uint64
		if idx, err = d.uint(at, w); err != nil {
			return false, err
		}
		if op == opBinPut || op == opLongBinPut {
			err = d.memoPut(at, uint32(idx))
		} else {
			err = d.memoGet(at, uint32(idx))
		}
	default:
		if name, ok := refusedNames[op]; ok {
			return false, fmt.Errorf("%w: at byte %d: opcode %s is refused: only dict, list, tuple, str, int, float, bool and None are read, and nothing a pickle names is imported or called", ErrUnsupported, at, name)
		}
		return false, malformed(at, "unknown opcode 0x%02x", op)
	}
	return false, err
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "None"
	case string:
		return "str"
	case int64, *big.Int:
		return "int"
	case float64:
		return "float"
	case bool:
		return "bool"
	case *list:
		return "list"
	case *dict:
		return "dict"
	case tuple:
		return "tuple"
	}
	return fmt.Sprintf("%T", v)
}

// walker converts decoded values, bounding depth and expansion and
// refusing cycles.
type walker struct {
	budget int
	active map[any]bool
}

func newWalker(n int) *walker {
	return &walker{budget: expandFactor*n + expandSlack, active: map[any]bool{}}
}

// enter charges cost and checks depth and cycles for a container.
func (w *walker) enter(c any, depth, cost int) error {
	w.budget -= cost
	if w.budget < 0 {
		return fmt.Errorf("%w: shared references expand beyond %d times the pickle's size", ErrMalformed, expandFactor)
	}
	if depth > maxDepth {
		return fmt.Errorf("%w: nested deeper than %d", ErrMalformed, maxDepth)
	}
	if c != nil && w.active[c] {
		return fmt.Errorf("%w: a %s contains itself", ErrUnsupported, typeName(c))
	}
	return nil
}

// open enters a container (c nil for a tuple, which cannot contain itself)
// and marks it active until done is called.
func (w *walker) open(c any, depth int) (done func(), err error) {
	if err := w.enter(c, depth, 1); err != nil {
		return nil, err
	}
	if c == nil {
		return func() {}, nil
	}
	w.active[c] = true
	return func() { delete(w.active, c) }, nil
}

// self is the list as a container key: nil for a tuple.
func self(l *list) any {
	if l == nil {
		return nil
	}
	return l
}

func (w *walker) native(v any, depth int) (any, error) {
	switch x := v.(type) {
	case string:
		return x, w.enter(nil, depth, 1+len(x))
	case *list:
		return w.nativeItems(x, x.items, depth)
	case tuple:
		return w.nativeItems(nil, x, depth)
	case *dict:
		done, err := w.open(x, depth)
		if err != nil {
			return nil, err
		}
		defer done()
		m := make(map[string]any, len(x.keys))
		for i, k := range x.keys {
			if err := w.enter(nil, depth, len(k)); err != nil {
				return nil, err
			}
			e, err := w.native(x.vals[i], depth+1)
			if err != nil {
				return nil, err
			}
			m[k] = e
		}
		return m, nil
	}
	return v, w.enter(nil, depth, 1)
}

func (w *walker) nativeItems(l *list, items []any, depth int) (any, error) {
	done, err := w.open(self(l), depth)
	if err != nil {
		return nil, err
	}
	defer done()
	out := make([]any, len(items))
	for i, it := range items {
		e, err := w.native(it, depth+1)
		if err != nil {
			return nil, err
		}
		out[i] = e
	}
	return out, nil
}

// Decode reads a pickle of plain data and returns it as JSON-compatible Go
// values: map[string]any, []any (for lists and tuples), string, int64 (or
// *big.Int beyond 64 bits), float64, bool and nil. Anything else is refused
// with an error wrapping ErrUnsupported or ErrMalformed.
func Decode(data []byte) (any, error) {
	v, err := parse(data)
	if err != nil {
		return nil, err
	}
	return newWalker(len(data)).native(v, 0)
}
