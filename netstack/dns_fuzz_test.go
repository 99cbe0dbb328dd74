package netstack

import "testing"

func FuzzDNSAnswer(f *testing.F) {
	f.Add([]byte{0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 'a', 0, 0, 1, 0, 1})
	f.Fuzz(func(t *testing.T, q []byte) {
		d := &dnsForwarder{policy: &Policy{Hosts: []string{"b"}}, logf: func(string, ...any) {}}
		d.answer(q, false) // must not panic; upstream is empty
		d.learn(q)
	})
}
