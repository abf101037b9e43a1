package jsonscan

// NameSet finds repeated member names: a scan of the names seen while
// they fit the caller's buffer, a set past that. A 64-bit filter on each
// name's length and end bytes spares most scans: the names of one object
// rarely collide in it. Names are views, valid while the set is used.
type NameSet struct {
	filter uint64
	names  [][]byte
	many   map[string]struct{}
}

// NewNameSet is a set that keeps the names in buf while they fit.
func NewNameSet(buf [][]byte) NameSet { return NameSet{names: buf[:0]} }

// Add records k and reports whether it was seen before.
func (s *NameSet) Add(k []byte) (dup bool) {
	if s.many != nil {
		_, dup = s.many[string(k)]
		s.many[string(k)] = struct{}{}
		return dup
	}
	h := uint(len(k))
	if len(k) > 0 {
		h = h*31 + uint(k[0])*7 + uint(k[len(k)-1])
	}
	if bit := uint64(1) << (h & 63); s.filter&bit == 0 {
		s.filter |= bit
	} else {
		for _, seen := range s.names {
			dup = dup || string(seen) == string(k)
		}
	}
	if len(s.names) == cap(s.names) {
		s.many = make(map[string]struct{}, 2*len(s.names)+1)
		for _, seen := range s.names {
			s.many[string(seen)] = struct{}{}
		}
		s.many[string(k)] = struct{}{}
		return dup
	}
	s.names = s.names[:len(s.names)+1] // within the caller's buffer
	s.names[len(s.names)-1] = k
	return dup
}
