package main

import (
	"context"
	"errors"
	"flag"
)

// rackFlags configure the rack distribution and footprint sections.
type rackFlags struct{}

func registerRackFlags(fs *flag.FlagSet) *rackFlags { return &rackFlags{} }

func (b *runner) rackSection(ctx context.Context) (extraSection, error) {
	return extraSection{}, errors.New("not built yet")
}

func (b *runner) footprintSection(ctx context.Context) (extraSection, error) {
	return extraSection{}, errors.New("not built yet")
}
