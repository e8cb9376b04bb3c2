package main

import (
	"math"
	"testing"
)

// perfdhcp 2.2.0's report for `-i -x t` (shortened).
const perfdhcpOut = `Running: perfdhcp -4 -i -l moobi-bench-c -r 50 -n 4 -x t
Scenario: basic.
Multi-thread mode enabled.
***Rate statistics***
Rate: 49.8463 DISCOVER-OFFER/second, expected rate: 50

***Malformed Packets***
Malformed packets: 0
***Statistics for: DISCOVER-OFFER***
sent packets: 5
received packets: 4
drops: 1
drops ratio: 20 %
orphans: 0
rejected leases: 0
non unique addresses: 0

min delay: 0.433 ms
avg delay: 1.082 ms
max delay: 4.578 ms
std deviation: 1.071 ms
collected packets: 0

***Timestamps for packets: DISCOVER-OFFER***
sent / received: 000000.000798 / 000000.001819
sent / received: 000000.040896 / 000000.044612
sent / received: 000000.060878 / 000000.061638
sent / received: 000001.080890 / 000001.081658
`

func TestParsePerfdhcp(t *testing.T) {
	r, err := parsePerfdhcp(perfdhcpOut)
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent != 5 || r.Received != 4 || r.Drops != 1 || r.Samples != 4 || math.Abs(r.Rate-49.8463) > 1e-9 {
		t.Fatalf("parsed %+v", r)
	}
	// Delays: 1.021, 3.716, 0.760, 0.768 ms.
	if math.Abs(r.P50-0.768) > 1e-6 || math.Abs(r.P99-3.716) > 1e-6 || math.Abs(r.Max-3.716) > 1e-6 {
		t.Fatalf("p50 %v p99 %v max %v", r.P50, r.P99, r.Max)
	}
	if _, err := parsePerfdhcp("perfdhcp: bad option\n"); err == nil {
		t.Fatal("no error for output without a report")
	}
}

func TestPercentile(t *testing.T) {
	v := make([]float64, 100)
	for i := range v {
		v[i] = float64(i + 1)
	}
	for _, c := range []struct{ p, want float64 }{{50, 50}, {99, 99}, {100, 100}, {1, 1}} {
		if got := percentile(v, c.p); got != c.want {
			t.Errorf("percentile(1..100, %v) = %v, want %v", c.p, got, c.want)
		}
	}
	if got := percentile([]float64{7}, 99); got != 7 {
		t.Errorf("one value: %v", got)
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("no value: %v", got)
	}
}
