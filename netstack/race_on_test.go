//go:build race

package netstack

// raceEnabled: the race detector's bookkeeping grows the heap figures
// tests read.
const raceEnabled = true
