package main

import (
	"fmt"
	"html"
	"math"
	"slices"
	"strings"
)

// rackPlot draws the time until all N nodes verified against N (log2 axis)
// for moobi, plain HTTP and the bound, as a standalone SVG.
func rackPlot(title string, runs []rackRun) string {
	const w, h, left, right, top, bottom = 640, 400, 60, 150, 40, 50
	var ns []int
	ymax := 0.0
	for _, r := range runs {
		if !slices.Contains(ns, r.n) {
			ns = append(ns, r.n)
		}
		ymax = max(ymax, r.all, r.bound)
	}
	slices.Sort(ns)
	if len(ns) == 0 || ymax == 0 {
		return ""
	}
	ymax = niceCeil(ymax)
	lx := func(n int) float64 {
		lo, hi := math.Log2(float64(ns[0])), math.Log2(float64(ns[len(ns)-1]))
		if hi == lo {
			return left + float64(w-left-right)/2
		}
		return left + (math.Log2(float64(n))-lo)/(hi-lo)*float64(w-left-right)
	}
	ly := func(s float64) float64 { return float64(h-bottom) - s/ymax*float64(h-top-bottom) }
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="%d" y="20" font-size="14">%s</text>`+"\n", left, html.EscapeString(title))
	// Axes, grid and labels.
	p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", left, h-bottom, w-right, h-bottom)
	p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", left, top, left, h-bottom)
	for i := 0; i <= 5; i++ {
		v := ymax * float64(i) / 5
		y := ly(v)
		p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", left, y, w-right, y)
		p(`<text x="%d" y="%.1f" text-anchor="end">%g</text>`+"\n", left-6, y+4, math.Round(v*10)/10)
	}
	for _, n := range ns {
		p(`<text x="%.1f" y="%d" text-anchor="middle">%d</text>`+"\n", lx(n), h-bottom+18, n)
	}
	p(`<text x="%d" y="%d" text-anchor="middle">nodes booting at once (N)</text>`+"\n", left+(w-left-right)/2, h-12)
	p(`<text x="16" y="%d" text-anchor="middle" transform="rotate(-90 16 %d)">seconds until all N verified</text>`+"\n", top+(h-top-bottom)/2, top+(h-top-bottom)/2)
	series := []struct {
		label, color, dash string
		value              func(rackRun) (float64, bool)
	}{
		{"moobi (BitTorrent)", "#1f77b4", "", func(r rackRun) (float64, bool) { return r.all, r.method == "moobi" }},
		{"plain HTTP", "#d62728", "", func(r rackRun) (float64, bool) { return r.all, r.method == "http" }},
		{"bound", "#555", "6 4", func(r rackRun) (float64, bool) { return r.bound, r.method == "moobi" }},
		{"1.5× bound", "#aaa", "2 3", func(r rackRun) (float64, bool) { return 1.5 * r.bound, r.method == "moobi" }},
	}
	for i, s := range series {
		var pts []string
		for _, n := range ns {
			for _, r := range runs {
				if v, ok := s.value(r); ok && r.n == n {
					pts = append(pts, fmt.Sprintf("%.1f,%.1f", lx(n), ly(v)))
					if s.dash == "" {
						p(`<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", lx(n), ly(v), s.color)
					}
				}
			}
		}
		if len(pts) > 0 {
			p(`<polyline points="%s" fill="none" stroke="%s" stroke-width="2" stroke-dasharray="%s"/>`+"\n", strings.Join(pts, " "), s.color, s.dash)
		}
		y := top + 10 + i*18
		p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2" stroke-dasharray="%s"/>`+"\n", w-right+10, y, w-right+35, y, s.color, s.dash)
		p(`<text x="%d" y="%d">%s</text>`+"\n", w-right+40, y+4, html.EscapeString(s.label))
	}
	p("</svg>\n")
	return b.String()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*e >= v {
			return m * e
		}
	}
	return 10 * e
}
