package slirp4netns

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/rootless-containers/rootlesskit/v2/pkg/port"

	"github.com/nsbox/nsbox/network"
)

// Ports changes the published ports of a running slirp4netns network
// (nsbox port add, rm, ls) through its API socket (add_hostfwd,
// remove_hostfwd, by rootlesskit's slirp4netns port driver). Put one in
// Config.Ports: slirp4netns then keeps its API socket for the sandbox's
// life, and the methods work from the sandbox's start to its end.
type Ports struct {
	mu     sync.Mutex
	cfg    Config
	driver port.ParentDriver // set while slirp4netns runs
	ids    map[network.Publish]int
	order  []network.Publish
}

// Publish forwards one more host port, with Config.Publish's rules.
func (ps *Ports) Publish(p network.Publish) error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.driver == nil {
		return &network.Error{Mode: "slirp4netns", Field: "Publish", Value: p.String(), Problem: "slirp4netns is not running"}
	}
	check := ps.cfg
	check.Publish = []network.Publish{p}
	if err := check.Validate(); err != nil {
		return err
	}
	if _, ok := ps.ids[p]; ok {
		return &network.Error{Mode: "slirp4netns", Field: "Publish", Value: p.String(), Problem: "host port published already", Fix: "pick another host port, or unpublish it first"}
	}
	spec := port.Spec{Proto: p.Proto, ParentIP: p.Host.Addr().String(), ParentPort: int(p.Host.Port()),
		ChildIP: network.SandboxIPv4.String(), ChildPort: int(p.SandboxPort)}
	st, err := ps.driver.AddPort(context.Background(), spec)
	if err != nil {
		return &network.Error{Mode: "slirp4netns", Field: "Publish", Value: p.String(), Problem: fmt.Sprintf("slirp4netns could not forward it: %v", err), Fix: "pick a free host port"}
	}
	ps.ids[p] = st.ID
	ps.order = append(ps.order, p)
	return nil
}

// Unpublish stops forwarding p's host port; p must be as published.
func (ps *Ports) Unpublish(p network.Publish) error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	id, ok := ps.ids[p]
	if !ok || ps.driver == nil {
		return &network.Error{Mode: "slirp4netns", Field: "Publish", Value: p.String(), Problem: "not published", Fix: "name a published port (Ports lists them)"}
	}
	if err := ps.driver.RemovePort(context.Background(), id); err != nil {
		return &network.Error{Mode: "slirp4netns", Field: "Publish", Value: p.String(), Problem: "slirp4netns could not remove it", Err: err}
	}
	delete(ps.ids, p)
	ps.order = slices.DeleteFunc(ps.order, func(q network.Publish) bool { return q == p })
	return nil
}

// Ports returns the published ports, in the order they were published.
func (ps *Ports) Ports() ([]network.Publish, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return slices.Clone(ps.order), nil
}

// attach starts serving through sock's driver; detach ends it.
func (ps *Ports) attach(cfg Config, sock string) error {
	d, err := newDriver(cfg, sock)
	if err != nil {
		return err
	}
	ps.mu.Lock()
	ps.cfg, ps.driver, ps.ids, ps.order = cfg, d, map[network.Publish]int{}, nil
	ps.mu.Unlock()
	return nil
}

func (ps *Ports) detach() {
	ps.mu.Lock()
	ps.driver = nil
	ps.mu.Unlock()
}

var _ network.Ports = (*Ports)(nil)
