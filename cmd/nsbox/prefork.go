package main

// `nsbox run` starts its sandbox stage before the Go runtime does: see
// nsbox_prefork in sandbox/stage.h. Defining this symbol opts in.

/*
const char nsbox_prefork_command[] = "run";
*/
import "C"
