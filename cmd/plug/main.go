// Command plug is PLUG's single command-line tool; the commands live in package
// plugcli, so that applications can build their own plug with extra transforms.
package main

import "github.com/plugchain/plug/cmd/plug/plugcli"

func main() { plugcli.Main() }
