package torrent

import (
	"github.com/anacrolix/torrent/types/infohash"
)

type shortInfohash = infohash.T
