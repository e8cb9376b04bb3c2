// Command moobi-node is /init of the node initramfs (see package node).
// "moobi-node seed SPEC" is the seeder process it leaves behind when it
// pivots into the image.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"moobi/initrd/fetch"
	"moobi/initrd/node"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if len(os.Args) == 3 && os.Args[1] == "seed" {
		// File descriptor 3, if open, is the parent's readiness pipe.
		ready := func() {
			if f := os.NewFile(3, "ready"); f != nil {
				f.Write([]byte{1})
				f.Close()
			}
		}
		if err := fetch.Seed(context.Background(), os.Args[2], log.With("component", "seeder"), ready); err != nil {
			fmt.Fprintln(os.Stderr, "MOOBI seeder:", err)
			os.Exit(1)
		}
		return
	}
	err := node.Boot(log)
	fmt.Fprintln(os.Stderr, "MOOBI: fatal:", err)
	select {} // PID 1 must not exit
}
