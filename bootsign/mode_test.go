package bootsign

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A private key file group or others may read is refused, with the fix;
// LoadOrCreate does not replace it with a new key.
func TestPrivateKeyMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "boot-signing.key")
	key, _, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mode os.FileMode
		ok   bool
	}{{0o600, true}, {0o400, true}, {0o640, false}, {0o644, false}, {0o604, false}, {0o620, false}} {
		if err := os.Chmod(path, tc.mode); err != nil {
			t.Fatal(err)
		}
		got, err := LoadPrivateKey(path)
		if tc.ok {
			if err != nil || !got.Equal(key) {
				t.Errorf("mode %04o: %v", tc.mode, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "chmod 600 "+path) || !strings.Contains(err.Error(), "group and others may read it") {
			t.Errorf("mode %04o: error %v, want a refusal naming the fix", tc.mode, err)
		}
		if again, _, err := LoadOrCreate(path); err == nil || again != nil {
			t.Errorf("mode %04o: LoadOrCreate returned a key", tc.mode)
		}
	}
}
