package integrity

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"

	"github.com/auditpipe/auditpipe"
)

// MaxLine bounds one NDJSON line: above any event the sidecar accepts.
const MaxLine = 64 << 20

// ReadNDJSON feeds every line of r (NDJSON events, as the file output, S3
// objects, Kafka values and webhook bodies carry them; gzip is detected
// and undone) to v. Blank lines are skipped; a line that is not an event
// is reported as malformed, not fatal. The error is for I/O only.
func (v *Verifier) ReadNDJSON(r io.Reader, source string) error {
	br := bufio.NewReaderSize(r, 256<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("%s: gzip: %w", source, err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 256<<10)
	}
	var (
		ev   auditpipe.Event
		long []byte
		line int64
	)
	for {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: gather it, up to MaxLine (past
			// that, the rest is read and dropped, and the line reported).
			long = append(long[:0], b...)
			for errors.Is(err, bufio.ErrBufferFull) {
				b, err = br.ReadSlice('\n')
				if len(long) <= MaxLine {
					long = append(long, b...)
				}
			}
			b = long
		}
		if len(b) > 0 {
			line++
			v.line(b, Where{Source: source, Line: line}, &ev)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return fmt.Errorf("%s: %w", source, err)
		}
	}
}

func (v *Verifier) line(b []byte, at Where, ev *auditpipe.Event) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return
	}
	if len(b) > MaxLine {
		v.Malformed(at, fmt.Errorf("line longer than %d bytes", MaxLine))
		return
	}
	*ev = auditpipe.Event{}
	if err := auditpipe.DecodeJSON(b, ev); err != nil {
		v.Malformed(at, err)
		return
	}
	v.Add(ev, at)
}
