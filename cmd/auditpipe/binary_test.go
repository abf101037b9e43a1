package main

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// TestBinaryLinksOnlyCalledMethods builds the binary with the Makefile's
// build tags and checks that the linker could drop the methods nothing
// calls. It cannot when code that calls methods by name (text/template's
// execution) is reachable: then it keeps every exported method of every
// type: the binary's code and read-only data grow by 44 %, idle RSS by
// about 5 MiB (docs/performance.md). grpc reaches html/template through
// golang.org/x/net/trace unless built with grpcnotrace.
func TestBinaryLinksOnlyCalledMethods(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if runtime.GOOS != "linux" {
		t.Skip("reads the ELF symbol table")
	}
	tags := makefileTags(t)
	docker, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(docker), "go build -trimpath -tags "+tags+" ") {
		t.Errorf("the Dockerfile's go build does not pass the Makefile's BUILDTAGS (-tags %s)", tags)
	}

	bin := filepath.Join(t.TempDir(), "auditpipe")
	cmd := exec.Command("go", "build", "-tags", tags, "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	have := make(map[string]bool, len(syms))
	for _, s := range syms {
		have[s.Name] = true
	}
	for _, tc := range []struct {
		sym    string
		linked bool
		why    string
	}{
		// Called by outputs/s3: present, or this test reads nothing.
		{"github.com/aws/aws-sdk-go-v2/service/s3.(*Client).PutObject", true, "outputs/s3 calls it"},
		// Exported, never called.
		{"github.com/aws/aws-sdk-go-v2/service/s3.(*Client).DeleteBucketLifecycle", false,
			"nothing calls it: the linker keeps every exported method (something calls methods by name)"},
		// esapi.New fills a struct with every Elasticsearch API function.
		{"github.com/elastic/go-elasticsearch/v8/esapi.New", false,
			"the elasticsearch output must use the base client and esapi request values"},
		// Registers /debug/requests on http.DefaultServeMux and brings html/template.
		{"golang.org/x/net/trace.init", false, "grpc imports golang.org/x/net/trace: build with -tags grpcnotrace"},
	} {
		if have[tc.sym] != tc.linked {
			t.Errorf("%s linked = %v, want %v: %s", tc.sym, have[tc.sym], tc.linked, tc.why)
		}
	}
}

// makefileTags returns the Makefile's BUILDTAGS, the one place they are set.
func makefileTags(t *testing.T) string {
	t.Helper()
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^BUILDTAGS\s*:=\s*(\S+)\s*$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("no BUILDTAGS := line in the Makefile")
	}
	return string(m[1])
}
