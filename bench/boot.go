package main

import (
	"context"
	"errors"
	"flag"
)

// bootFlags configure the boot section.
type bootFlags struct{}

func registerBootFlags(fs *flag.FlagSet) *bootFlags { return &bootFlags{} }

func (b *runner) bootSection(ctx context.Context) (extraSection, error) {
	return extraSection{}, errors.New("not built yet")
}
