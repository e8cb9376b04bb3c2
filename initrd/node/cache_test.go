package node

import (
	"errors"
	"io/fs"
	"testing"

	"github.com/google/go-cmp/cmp"

	"moobi/nodeapi"
)

// TestDecideCache: the cache device when it holds the image; else a clear
// failure naming it, or RAM when the profile allows it and /run has room.
func TestDecideCache(t *testing.T) {
	const size = 100 << 20
	const room = size + ramOverlayMargin
	missing := &fs.PathError{Op: "open", Path: "/dev/vda", Err: errors.New("no such file or directory")}
	ramPath := "/run/moobi/cache/web.rootfs"
	tests := []struct {
		name     string
		cache    string
		fallback string
		probe    cacheProbe
		want     cacheChoice
		err      string
	}{
		{name: "RAM", probe: cacheProbe{RAMFree: room}, want: cacheChoice{Path: ramPath}},
		{name: "RAM too small", probe: cacheProbe{RAMFree: room - 1},
			err: "RAM cache /run has 121634815 bytes free, the image needs 121634816 (104857600 bytes, and 16777216 for the overlay)"},
		{name: "device", cache: "/dev/vda", probe: cacheProbe{DevSize: size + StateAreaSize, RAMFree: 0}, want: cacheChoice{Path: "/dev/vda"}},
		{name: "device without room for the state area", cache: "/dev/vda", probe: cacheProbe{DevSize: size + StateAreaSize - 1, RAMFree: room},
			err: "cache device /dev/vda holds 105906175 bytes, the image needs 104857600 and the node's state area 1048576"},
		{name: "device with fallback", cache: "/dev/vda", fallback: "ram", probe: cacheProbe{DevSize: size << 1}, want: cacheChoice{Path: "/dev/vda"}},
		{name: "device missing", cache: "/dev/vda", probe: cacheProbe{DevErr: missing, RAMFree: room},
			err: "cache device /dev/vda: open /dev/vda: no such file or directory"},
		{name: "device missing, fallback fail", cache: "/dev/vda", fallback: "fail", probe: cacheProbe{DevErr: missing, RAMFree: room},
			err: "cache device /dev/vda: open /dev/vda: no such file or directory"},
		{name: "device too small", cache: "/dev/vda", probe: cacheProbe{DevSize: 1 << 20, RAMFree: room},
			err: "cache device /dev/vda holds 1048576 bytes, the image needs 104857600 and the node's state area 1048576"},
		{name: "device missing, fallback ram", cache: "/dev/vda", fallback: "ram", probe: cacheProbe{DevErr: missing, RAMFree: room},
			want: cacheChoice{Path: ramPath, FellBack: true, Why: "cache device /dev/vda: open /dev/vda: no such file or directory"}},
		{name: "device too small, fallback ram", cache: "/dev/vda", fallback: "ram", probe: cacheProbe{DevSize: 1 << 20, RAMFree: room},
			want: cacheChoice{Path: ramPath, FellBack: true, Why: "cache device /dev/vda holds 1048576 bytes, the image needs 104857600 and the node's state area 1048576"}},
		{name: "device too small, fallback ram, RAM too small", cache: "/dev/vda", fallback: "ram", probe: cacheProbe{DevSize: 1 << 20, RAMFree: 50 << 20},
			err: "cache device /dev/vda holds 1048576 bytes, the image needs 104857600 and the node's state area 1048576; cache_fallback is ram, but RAM cache /run has 52428800 bytes free, the image needs 121634816 (104857600 bytes, and 16777216 for the overlay)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := nodeapi.BootConfig{Image: "web", Size: size, Cache: tc.cache, CacheFallback: tc.fallback}
			tc.probe.RAMDir = "/run"
			got, err := decideCache(cfg, "/run/moobi/cache", tc.probe)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err %v\nwant %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("choice (-want +got):\n%s", diff)
			}
		})
	}
	// The device's error stays inspectable.
	_, err := decideCache(nodeapi.BootConfig{Image: "web", Size: size, Cache: "/dev/vda", CacheFallback: "ram"}, "/run/moobi/cache",
		cacheProbe{DevErr: fs.ErrNotExist, RAMDir: "/run"})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err %v does not wrap the device's error", err)
	}
}
