// Package charttest tests the Helm chart in charts/auditpipe with the real
// helm (HELM_BIN, else build/tools/helm, which `make test` installs):
// helm lint and helm template for each values file in the chart's ci/,
// every rendered object decoded strictly into the Kubernetes API types,
// and the rendered sidecar configuration checked by
// `auditpipe sidecar --check-config`.
//
// It lives beside the chart rather than in it, so that helm never
// packages Go files; testdata/app is an application chart that includes
// the sidecar as the chart's README shows.
package charttest
