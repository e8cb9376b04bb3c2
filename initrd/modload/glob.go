package modload

// Glob reports whether s matches the shell pattern, as fnmatch(3) with no
// flags (which kmod uses for modules.alias): '*' matches any run of bytes,
// '/' included; '?' any one byte; "[...]" one byte of a set, with ranges
// (a-f) and negation ('!' or '^' first); '\' makes the next byte literal.
// A '[' without its ']' is a literal '['.
func Glob(pattern, s string) bool {
	p, i := 0, 0
	// Where to resume after the last '*': the pattern just after it, and
	// the byte of s it would swallow next.
	starP, starI := -1, 0
	for i < len(s) {
		if p < len(pattern) {
			switch c := pattern[p]; c {
			case '*':
				starP, starI = p+1, i
				p++
				continue
			case '?':
				p++
				i++
				continue
			case '[':
				if ok, n, valid := matchClass(pattern[p:], s[i]); valid {
					if ok {
						p += n
						i++
						continue
					}
					break // mismatch: backtrack below
				} else if s[i] == '[' {
					p++
					i++
					continue
				}
			case '\\':
				if p+1 < len(pattern) {
					if pattern[p+1] == s[i] {
						p += 2
						i++
						continue
					}
					break
				}
				if s[i] == '\\' {
					p++
					i++
					continue
				}
			default:
				if c == s[i] {
					p++
					i++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starI++
		p, i = starP, starI
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// matchClass matches b against the bracket expression at the start of
// pat ("[...]"). n is the expression's length; valid is false when it has
// no closing ']'.
func matchClass(pat string, b byte) (ok bool, n int, valid bool) {
	i := 1
	neg := false
	if i < len(pat) && (pat[i] == '!' || pat[i] == '^') {
		neg = true
		i++
	}
	first := true
	for ; i < len(pat); i++ {
		c := pat[i]
		if c == ']' && !first {
			return ok != neg, i + 1, true
		}
		first = false
		if c == '\\' && i+1 < len(pat) {
			i++
			c = pat[i]
		}
		lo, hi := c, c
		if i+2 < len(pat) && pat[i+1] == '-' && pat[i+2] != ']' {
			hi = pat[i+2]
			if hi == '\\' && i+3 < len(pat) {
				hi = pat[i+3]
				i++
			}
			i += 2
		}
		if lo <= b && b <= hi {
			ok = true
		}
	}
	return false, 0, false
}
