// Command emptygo does nothing: the benchmark times it to tell the Go
// runtime's own start-up cost from nsbox's.
package main

func main() {}
