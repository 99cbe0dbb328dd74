package main

// cpuid executes the CPUID instruction (timeline.go times it).
func cpuid(leaf, sub uint32) (a, b, c, d uint32)
