module github.com/nsbox/nsbox

go 1.26.0

require (
	github.com/moby/sys/user v0.5.0
	github.com/spf13/pflag v1.1.0
	golang.org/x/net v0.62.0
	golang.org/x/sys v0.49.0
	gotest.tools/v3 v3.5.2
)

require github.com/google/go-cmp v0.5.9 // indirect
