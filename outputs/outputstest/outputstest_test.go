package outputstest

import "testing"

func TestEventsAreValid(t *testing.T) {
	seen := map[string]bool{}
	for i, ev := range Events(64) {
		if err := ev.Validate(); err != nil {
			t.Errorf("event %d: %v", i, err)
		}
		if seen[ev.ID] {
			t.Errorf("event %d: duplicate id %s", i, ev.ID)
		}
		seen[ev.ID] = true
	}
}
