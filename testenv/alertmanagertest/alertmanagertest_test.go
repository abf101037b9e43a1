package alertmanagertest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestNotifiesTheWebhook(t *testing.T) {
	Require(t)
	got := make(chan map[string]any, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		json.Unmarshal(b, &m)
		if u, p, _ := r.BasicAuth(); u != "am" || p != "pw" {
			t.Errorf("basic auth %q %q", u, p)
		}
		got <- m
	}))
	defer hook.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	am, err := Start(ctx, Config{WebhookURL: hook.URL, Username: "am", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer am.Close()
	if err := am.PostAlerts(ctx, Alert{Labels: map[string]string{"alertname": "audit", "audit_id": "x1"}},
		Alert{Labels: map[string]string{"alertname": "other"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m["version"] != "4" || len(m["alerts"].([]any)) != 1 {
			t.Errorf("notification %v", m)
		}
	case <-ctx.Done():
		t.Fatalf("no notification: %s", am.Log())
	}
}
