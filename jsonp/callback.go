package jsonp

// MaxCallbackLen is the longest callback name accepted.
const MaxCallbackLen = 128

// ValidCallback reports whether cb is a safe JSONP callback name: one or
// more JavaScript identifiers ([A-Za-z_$][A-Za-z0-9_$]*) joined by dots, at
// most MaxCallbackLen bytes. Anything else is never reflected into a
// response.
func ValidCallback(cb string) bool {
	if cb == "" || len(cb) > MaxCallbackLen {
		return false
	}
	start := true // at the first character of an identifier
	for i := 0; i < len(cb); i++ {
		c := cb[i]
		switch {
		case c == '.':
			if start {
				return false
			}
			start = true
			continue
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == '$':
		case c >= '0' && c <= '9':
			if start {
				return false
			}
		default:
			return false
		}
		start = false
	}
	return !start
}
