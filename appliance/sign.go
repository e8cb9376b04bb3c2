package main

import (
	"log/slog"

	"moobi/bootsign"
)

// loadSigner loads the appliance's boot config signing key from path,
// creating it (and its public half beside it) on first start.
func loadSigner(path string, log *slog.Logger) (*bootsign.Signer, error) {
	key, created, err := bootsign.LoadOrCreate(path)
	if err != nil {
		return nil, err
	}
	s := bootsign.NewSigner(key)
	if created {
		log.Info("boot signing key created; boot configs are signed", "key_id", s.KeyID(), "file", path, "public_key", bootsign.PublicKeyFile(path))
	} else {
		log.Info("boot configs are signed", "key_id", s.KeyID(), "file", path)
	}
	return s, nil
}
