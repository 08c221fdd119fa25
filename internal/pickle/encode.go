package pickle

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"sort"
)

const (
	frameTarget = 64 * 1024 // CPython's frame size target
	frameMin    = 4         // smaller frames are written without a header
	frameHeader = 9
	batchSize   = 1000 // items per SETITEMS / APPENDS
)

// Encode writes v as a protocol 4 pickle. v is made of the values Decode
// gives (map[string]any, []any, string, int64 or any Go int type, *big.Int,
// float64, float32, bool, nil); map keys are written in sorted order (use
// FromJSON to keep an order).
func Encode(v any) ([]byte, error) {
	t, err := fromNative(v, 0)
	if err != nil {
		return nil, err
	}
	return encodeTree(t)
}

func fromNative(v any, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%w: nested deeper than %d", ErrUnsupported, maxDepth)
	}
	switch x := v.(type) {
	case nil, string, bool, int64, float64:
		return x, nil
	case int:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case uint64:
		if x > math.MaxInt64 {
			return new(big.Int).SetUint64(x), nil
		}
		return int64(x), nil
	case float32:
		return float64(x), nil
	case *big.Int:
		if x.IsInt64() {
			return x.Int64(), nil
		}
		return x, nil
	case []any:
		l := &list{items: make([]any, len(x))}
		for i, it := range x {
			e, err := fromNative(it, depth+1)
			if err != nil {
				return nil, err
			}
			l.items[i] = e
		}
		return l, nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		d := &dict{}
		for _, k := range keys {
			e, err := fromNative(x[k], depth+1)
			if err != nil {
				return nil, err
			}
			d.set(k, e)
		}
		return d, nil
	}
	return nil, fmt.Errorf("%w: cannot pickle a %T", ErrUnsupported, v)
}

// encoder mirrors CPython's C pickler for plain data: frames, memo, batches.
type encoder struct {
	out        []byte
	framing    bool
	frameStart int // index of the reserved frame header, -1 if no frame is open
	memo       map[string]uint32
	memoLen    uint32
}

func encodeTree(v any) ([]byte, error) {
	e := &encoder{frameStart: -1, memo: map[string]uint32{}}
	e.out = append(e.out, opProto, 4)
	e.framing = true
	if err := e.save(v); err != nil {
		return nil, err
	}
	e.write(opStop)
	e.commitFrame()
	return e.out, nil
}

func (e *encoder) write(b ...byte) {
	if e.framing && e.frameStart == -1 {
		e.frameStart = len(e.out)
		e.out = append(e.out, make([]byte, frameHeader)...)
	}
	e.out = append(e.out, b...)
}

func (e *encoder) commitFrame() {
	if e.frameStart == -1 {
		return
	}
	n := len(e.out) - e.frameStart - frameHeader
	if n >= frameMin {
		e.out[e.frameStart] = opFrame
		binary.LittleEndian.PutUint64(e.out[e.frameStart+1:], uint64(n))
	} else {
		copy(e.out[e.frameStart:], e.out[e.frameStart+frameHeader:])
		e.out = e.out[:len(e.out)-frameHeader]
	}
	e.frameStart = -1
}

func (e *encoder) memoize() {
	e.write(opMemoize)
	e.memoLen++
}

func (e *encoder) save(v any) error {
	if e.frameStart != -1 && len(e.out)-e.frameStart-frameHeader >= frameTarget {
		e.commitFrame()
	}
	switch x := v.(type) {
	case nil:
		e.write(opNone)
	case bool:
		if x {
			e.write(opNewTrue)
		} else {
			e.write(opNewFalse)
		}
	case int64:
		e.saveInt(x)
	case *big.Int:
		e.saveLong(x)
	case float64:
		var b [9]byte
		b[0] = opBinFloat
		binary.BigEndian.PutUint64(b[1:], math.Float64bits(x))
		e.write(b[:]...)
	case string:
		e.saveString(x)
	case *list:
		e.write(opEmptyList)
		e.memoize()
		return e.saveList(x.items)
	case *dict:
		e.write(opEmptyDict)
		e.memoize()
		return e.saveDict(x)
	default:
		return fmt.Errorf("%w: cannot pickle a %T", ErrUnsupported, v)
	}
	return nil
}

func (e *encoder) saveInt(x int64) {
	switch {
	case x >= 0 && x <= 0xff:
		e.write(opBinInt1, byte(x))
	case x >= 0 && x <= 0xffff:
		e.write(opBinInt2, byte(x), byte(x>>8))
	case x >= math.MinInt32 && x <= math.MaxInt32:
		var b [5]byte
		b[0] = opBinInt
		binary.LittleEndian.PutUint32(b[1:], uint32(int32(x)))
		e.write(b[:]...)
	default:
		e.saveLong(big.NewInt(x))
	}
}

// saveLong writes LONG1/LONG4 with the minimal two's-complement bytes.
func (e *encoder) saveLong(x *big.Int) {
	n := x.BitLen()/8 + 1
	var enc []byte
	if x.Sign() >= 0 {
		enc = make([]byte, n)
		x.FillBytes(enc)
	} else {
		// 2^(8n) + x, then drop a redundant 0xff as CPython does.
		t := new(big.Int).Lsh(big.NewInt(1), uint(8*n))
		t.Add(t, x)
		enc = make([]byte, n)
		t.FillBytes(enc)
		if n > 1 && enc[0] == 0xff && enc[1]&0x80 != 0 {
			enc = enc[1:]
		}
	}
	for i, j := 0, len(enc)-1; i < j; i, j = i+1, j-1 {
		enc[i], enc[j] = enc[j], enc[i]
	}
	if len(enc) < 256 {
		e.write(append([]byte{opLong1, byte(len(enc))}, enc...)...)
		return
	}
	hdr := []byte{opLong4, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(hdr[1:], uint32(len(enc)))
	e.write(append(hdr, enc...)...)
}

func (e *encoder) saveString(s string) {
	if idx, ok := e.memo[s]; ok {
		if idx < 256 {
			e.write(opBinGet, byte(idx))
		} else {
			var b [5]byte
			b[0] = opLongBinGet
			binary.LittleEndian.PutUint32(b[1:], idx)
			e.write(b[:]...)
		}
		return
	}
	n := len(s)
	switch {
	case n <= 0xff:
		e.write(append([]byte{opShortBinUnicod, byte(n)}, s...)...)
	default:
		hdr := []byte{opBinUnicode, 0, 0, 0, 0}
		if uint64(n) > math.MaxUint32 {
			hdr = make([]byte, 9)
			hdr[0] = opBinUnicode8
			binary.LittleEndian.PutUint64(hdr[1:], uint64(n))
		} else {
			binary.LittleEndian.PutUint32(hdr[1:], uint32(n))
		}
		if n >= frameTarget {
			// Large payloads go outside frames.
			e.commitFrame()
			e.framing = false
			e.out = append(append(e.out, hdr...), s...)
			e.framing = true
		} else {
			e.write(append(hdr, s...)...)
		}
	}
	e.memo[s] = e.memoLen
	e.memoize()
}

func (e *encoder) saveList(items []any) error {
	if len(items) == 1 {
		if err := e.save(items[0]); err != nil {
			return err
		}
		e.write(opAppend)
		return nil
	}
	for total := 0; total < len(items); {
		e.write(opMark)
		for n := 0; total < len(items) && n < batchSize; n++ {
			if err := e.save(items[total]); err != nil {
				return err
			}
			total++
		}
		e.write(opAppends)
	}
	return nil
}

func (e *encoder) saveDict(d *dict) error {
	switch len(d.keys) {
	case 0:
		return nil
	case 1:
		if err := e.save(d.keys[0]); err != nil {
			return err
		}
		if err := e.save(d.vals[0]); err != nil {
			return err
		}
		e.write(opSetItem)
		return nil
	}
	// CPython writes one more, empty, batch when the size is a multiple
	// of the batch size.
	for i, n := 0, batchSize; n == batchSize; {
		e.write(opMark)
		for n = 0; i < len(d.keys) && n < batchSize; n++ {
			if err := e.save(d.keys[i]); err != nil {
				return err
			}
			if err := e.save(d.vals[i]); err != nil {
				return err
			}
			i++
		}
		e.write(opSetItems)
	}
	return nil
}
