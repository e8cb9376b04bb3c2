package node

import (
	"fmt"
	"path/filepath"

	"moobi/nodeapi"
)

// ramOverlayMargin is the room the RAM cache leaves free beside the image:
// the overlay's writes, the seed spec and the image's first files in /run
// share the node's RAM with it.
const ramOverlayMargin = 16 << 20

// cacheProbe is what the node found out about its caches.
type cacheProbe struct {
	// DevSize is the size of the boot config's cache device, when DevErr
	// is nil (unused without a cache device).
	DevSize int64
	// DevErr is why the cache device could not be opened or sized.
	DevErr error
	// RAMDir is the tmpfs of the RAM cache (/run) and RAMFree what it has
	// free for the image: statfs's available bytes, plus what a previous
	// attempt's download already holds there.
	RAMDir  string
	RAMFree int64
}

// cacheChoice is where the image goes.
type cacheChoice struct {
	// Path is the cache device, or a file in the RAM cache.
	Path string
	// FellBack is set when the cache device was unusable and the profile's
	// cache_fallback let the node cache in RAM; Why then says what was
	// wrong with the device.
	FellBack bool
	Why      string
}

// decideCache picks the image's cache from the boot config and what the
// node found: the cache device if it is there and holds the image and,
// at its end, the node's state area (StateAreaSize); else,
// with cache_fallback: ram (or without a cache device), RAM if the tmpfs
// has room for the image and ramOverlayMargin. Every refusal names the
// device or the tmpfs, and both figures.
func decideCache(cfg nodeapi.BootConfig, dir string, pr cacheProbe) (cacheChoice, error) {
	ram := func() (string, error) {
		if need := cfg.Size + ramOverlayMargin; pr.RAMFree < need {
			return "", fmt.Errorf("RAM cache %s has %d bytes free, the image needs %d (%d bytes, and %d for the overlay)",
				pr.RAMDir, pr.RAMFree, need, cfg.Size, ramOverlayMargin)
		}
		return filepath.Join(dir, cfg.Image+".rootfs"), nil
	}
	if cfg.Cache == "" {
		path, err := ram()
		return cacheChoice{Path: path}, err
	}
	var devErr error
	switch {
	case pr.DevErr != nil:
		devErr = fmt.Errorf("cache device %s: %w", cfg.Cache, pr.DevErr)
	case pr.DevSize-StateAreaSize < cfg.Size:
		devErr = fmt.Errorf("cache device %s holds %d bytes, the image needs %d and the node's state area %d", cfg.Cache, pr.DevSize, cfg.Size, StateAreaSize)
	default:
		return cacheChoice{Path: cfg.Cache}, nil
	}
	if cfg.CacheFallback != nodeapi.CacheFallbackRAM {
		return cacheChoice{}, devErr
	}
	path, err := ram()
	if err != nil {
		return cacheChoice{}, fmt.Errorf("%w; cache_fallback is ram, but %w", devErr, err)
	}
	return cacheChoice{Path: path, FellBack: true, Why: devErr.Error()}, nil
}
