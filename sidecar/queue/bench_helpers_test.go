package queue

import "fmt"

// benchRecord returns a 1 KB record shaped like an event's JSON line.
func benchRecord(i int) []byte {
	rec := fmt.Appendf(nil, `{"schema_version":"1","id":"evt-%08d","source":{"type":"app"},"action":"user.login","outcome":"success","details":{"pad":"`, i)
	for len(rec) < 1021 {
		rec = append(rec, 'x')
	}
	return append(rec, `"}}`...)
}
