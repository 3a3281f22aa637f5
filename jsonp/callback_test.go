package jsonp

import (
	"strings"
	"testing"
)

func TestValidCallback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cb   string
		want bool
	}{
		{"simple", "cb", true},
		{"dotted", "a.b.c", true},
		{"dollar and underscore", "$_x.$1._", true},
		{"jquery style", "jQuery123_456", true},
		{"digits after start", "a1.b2", true},
		{"128 chars", strings.Repeat("a", 128), true},
		{"empty", "", false},
		{"129 chars", strings.Repeat("a", 129), false},
		{"leading digit", "1a", false},
		{"segment with leading digit", "a.1b", false},
		{"double dot", "a..b", false},
		{"trailing dot", "a.", false},
		{"leading dot", ".a", false},
		{"lone dot", ".", false},
		{"call", "alert(1)", false},
		{"unicode letter", "é", false},
		{"unicode letter inside", "aé", false},
		{"hyphen", "a-b", false},
		{"space", "a b", false},
		{"bracket", "a[0]", false},
		{"semicolon", "a;b", false},
		{"newline", "a\n", false},
		{"nul", "a\x00", false},
		{"script end", "</script>", false},
	}
	for _, tt := range tests {
		if got := ValidCallback(tt.cb); got != tt.want {
			t.Errorf("%s: ValidCallback(%q) = %v, want %v", tt.name, tt.cb, got, tt.want)
		}
	}
}
