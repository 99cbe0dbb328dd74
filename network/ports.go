package network

// Ports is a running network's published ports, changed while the sandbox
// runs (nsbox port add, rm, ls): usernet.Ports and slirp4netns.Ports
// implement it. Publish takes -p's semantics; Unpublish takes a port as
// published; Ports lists them in the order they were published.
type Ports interface {
	Publish(Publish) error
	Unpublish(Publish) error
	Ports() ([]Publish, error)
}
