// Package reqbody pools the request bodies of the HTTP outputs (webhook,
// splunk_hec). The transport may still be reading a body after Do returns
// (a server can answer before reading it all), and it closes the body
// when done; a body may also be read again through GetBody. So a Buffer
// goes back to its Pool only when its sender and every reader handed to
// the transport have released it.
package reqbody

import (
	"bytes"
	"io"
	"sync"
	"sync/atomic"
)

// Pool hands out Buffers and keeps those of at most keep bytes.
type Pool struct {
	p    sync.Pool
	keep int
}

// NewPool returns a Pool that keeps buffers of capacity up to keep.
func NewPool(keep int) *Pool {
	p := &Pool{keep: keep}
	p.p.New = func() any { return &Buffer{pool: p} }
	return p
}

// Get returns an empty Buffer holding one reference, the caller's.
func (p *Pool) Get() *Buffer {
	bf := p.p.Get().(*Buffer)
	bf.B = bf.B[:0]
	bf.refs.Store(1)
	return bf
}

// Buffer is one request body; B is its bytes.
type Buffer struct {
	B    []byte
	refs atomic.Int32
	pool *Pool
}

// Release drops a reference; the last one returns the Buffer to its Pool.
func (bf *Buffer) Release() {
	if bf.refs.Add(-1) == 0 && cap(bf.B) <= bf.pool.keep {
		bf.pool.p.Put(bf)
	}
}

// Reader returns a reader over B that holds a reference until it is
// closed (once, however often Close is called).
func (bf *Buffer) Reader() io.ReadCloser {
	bf.refs.Add(1)
	r := &bodyReader{bf: bf}
	r.Reset(bf.B)
	return r
}

type bodyReader struct {
	bytes.Reader
	bf   *Buffer
	once sync.Once
}

func (r *bodyReader) Close() error {
	r.once.Do(r.bf.Release)
	return nil
}
