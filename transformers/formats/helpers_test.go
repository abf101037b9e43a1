package formats_test

import (
	"github.com/auditpipe/auditpipe/transformers/alertmanager"
	"github.com/auditpipe/auditpipe/transformers/app"
	"github.com/auditpipe/auditpipe/transformers/k8s"
)

func k8sStages(s ...string) k8s.Config       { return k8s.Config{Stages: s} }
func appFlavor(f string) app.Config          { return app.Config{Flavor: f} }
func alertname(n string) alertmanager.Config { return alertmanager.Config{Alertname: n} }
