package client

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/dop251/goja/ast"
	"github.com/dop251/goja/file"
	"github.com/dop251/goja/parser"
)

// es3Reserved are ES3's reserved words, keywords and literals: IE8 and
// older refuse them after a dot and as unquoted object keys.
var es3Reserved = wordSet(`break case catch continue default delete do else finally for
		function if in instanceof new return switch this throw try typeof var void while with
		abstract boolean byte char class const debugger double enum export extends final float
		goto implements import int interface long native package private protected public short
		static super synchronized throws transient volatile null true false let yield`)

func wordSet(words string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(words) {
		m[w] = true
	}
	return m
}

// es5Methods are ES5+ library methods: forbidden as any property access.
// (indexOf/lastIndexOf stay allowed: String has them in ES3.)
var es5Methods = map[string]bool{
	"forEach": true, "map": true, "filter": true, "reduce": true, "reduceRight": true,
	"some": true, "every": true, "bind": true, "trim": true, "trimLeft": true,
	"trimRight": true, "trimStart": true, "trimEnd": true, "isArray": true,
	"toISOString": true, "toJSON": true, "getOwnPropertyNames": true,
	"defineProperty": true, "defineProperties": true, "getPrototypeOf": true,
	"freeze": true, "seal": true, "assign": true, "includes": true, "startsWith": true,
	"endsWith": true, "padStart": true, "padEnd": true, "repeat": true, "find": true,
	"findIndex": true, "fill": true, "from": true, "entries": true, "values": true,
}

// es5Statics are forbidden as Object.x / Date.x.
var es5Statics = map[string]bool{"Object.keys": true, "Object.create": true, "Date.now": true}

// es3Problems parses src and lists every construct newer than ES3 it
// finds, each with its line number.
func es3Problems(src string) []string {
	var out []string
	line := func(idx file.Idx) int { return strings.Count(src[:min(int(idx)-1, len(src))], "\n") + 1 }
	add := func(idx file.Idx, format string, a ...any) {
		out = append(out, fmt.Sprintf("line %d: %s", line(idx), fmt.Sprintf(format, a...)))
	}
	prog, err := parser.ParseFile(nil, "polysocket.js", src, 0)
	if err != nil {
		return []string{"parse: " + err.Error()}
	}
	walk(reflect.ValueOf(prog), func(n ast.Node) {
		switch n := n.(type) {
		case *ast.DotExpression:
			name := n.Identifier.Name.String()
			if es3Reserved[name] {
				add(n.Identifier.Idx, "reserved word %q after a dot", name)
			}
			if es5Methods[name] {
				add(n.Identifier.Idx, "ES5+ method .%s", name)
			}
			if l, ok := n.Left.(*ast.Identifier); ok && es5Statics[l.Name.String()+"."+name] {
				add(n.Identifier.Idx, "ES5+ %s.%s", l.Name, name)
			}
		case *ast.Identifier:
			if n.Name == "JSON" {
				add(n.Idx, "JSON")
			}
		case *ast.PropertyKeyed:
			switch {
			case n.Kind == ast.PropertyKindGet || n.Kind == ast.PropertyKindSet:
				add(n.Idx0(), "%s accessor", n.Kind)
			case n.Kind == ast.PropertyKindMethod:
				add(n.Idx0(), "method shorthand")
			case n.Computed:
				add(n.Idx0(), "computed key")
			}
			if s, ok := n.Key.(*ast.StringLiteral); ok && !strings.HasPrefix(s.Literal, "'") &&
				!strings.HasPrefix(s.Literal, `"`) && es3Reserved[s.Value.String()] {
				add(s.Idx, "reserved word %q as an unquoted key", s.Value)
			}
		case *ast.PropertyShort:
			add(n.Idx0(), "shorthand property")
		case *ast.LexicalDeclaration:
			add(n.Idx0(), "let/const")
		case *ast.ArrowFunctionLiteral:
			add(n.Idx0(), "arrow function")
		case *ast.ClassLiteral, *ast.ClassDeclaration:
			add(n.Idx0(), "class")
		case *ast.TemplateLiteral:
			add(n.Idx0(), "template literal")
		case *ast.SpreadElement:
			add(n.Idx0(), "spread")
		case *ast.ForOfStatement:
			add(n.Idx0(), "for-of")
		case *ast.ObjectPattern, *ast.ArrayPattern:
			add(n.Idx0(), "destructuring")
		case *ast.YieldExpression, *ast.AwaitExpression:
			add(n.Idx0(), "yield/await")
		case *ast.OptionalChain:
			add(n.Idx0(), "optional chaining")
		case *ast.FunctionLiteral:
			if n.Async || n.Generator {
				add(n.Idx0(), "async or generator function")
			}
			if n.ParameterList != nil {
				if n.ParameterList.Rest != nil {
					add(n.Idx0(), "rest parameter")
				}
				for _, b := range n.ParameterList.List {
					if b.Initializer != nil {
						add(n.Idx0(), "default parameter")
					}
				}
			}
		}
	})
	for _, off := range trailingCommas(src) {
		out = append(out, fmt.Sprintf("line %d: trailing comma", line(file.Idx(off+1))))
	}
	return out
}

var (
	nodeType = reflect.TypeFor[ast.Node]()
	astPkg   = reflect.TypeFor[ast.Program]().PkgPath()
)

// walk calls visit for every ast.Node under v. It only descends into the
// ast package's own types, so it never wanders into file positions.
func walk(v reflect.Value, visit func(ast.Node)) {
	switch v.Kind() {
	case reflect.Interface:
		if !v.IsNil() {
			walk(v.Elem(), visit)
		}
	case reflect.Pointer:
		if v.IsNil() || v.Elem().Kind() != reflect.Struct || v.Elem().Type().PkgPath() != astPkg {
			return
		}
		if v.Type().Implements(nodeType) {
			visit(v.Interface().(ast.Node))
		}
		walk(v.Elem(), visit)
	case reflect.Struct:
		if v.Type().PkgPath() != astPkg {
			return
		}
		if v.CanAddr() && v.Addr().Type().Implements(nodeType) && v.Type() == reflect.TypeFor[ast.Identifier]() {
			visit(v.Addr().Interface().(ast.Node))
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				walk(v.Field(i), visit)
			}
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			walk(v.Index(i), visit)
		}
	}
}

// trailingCommas returns the offsets of commas directly followed (past
// blanks and comments) by ']', '}' or ')'. The parser does not record
// them, so a small tokenizer skips strings, comments and regexes.
func trailingCommas(src string) []int {
	var out []int
	lastComma := -1
	prev := "" // previous significant token, to tell a regex from a division
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
			continue
		case strings.HasPrefix(src[i:], "//"):
			for i < len(src) && src[i] != '\n' {
				i++
			}
			continue
		case strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return out
			}
			i += end + 4
			continue
		}
		if (c == ']' || c == '}' || c == ')') && lastComma >= 0 {
			out = append(out, lastComma)
		}
		lastComma = -1
		start := i
		switch {
		case c == '\'' || c == '"':
			i = skipQuoted(src, i, c)
		case c == '/' && regexAllowed(prev):
			i = skipRegex(src, i)
		case isIdent(c):
			for i < len(src) && isIdent(src[i]) {
				i++
			}
		default:
			if c == ',' {
				lastComma = i
			}
			i++
		}
		prev = src[start:i]
	}
	return out
}

func isIdent(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// regexAllowed: after these a '/' starts a regex literal, not a division.
func regexAllowed(prev string) bool {
	switch prev {
	case "", "return", "typeof", "instanceof", "in", "new", "delete", "void", "throw", "case", "do", "else":
		return true
	case ")", "]", "}":
		return false
	}
	return !isIdent(prev[0]) && prev[0] != '\'' && prev[0] != '"' && prev[0] != '/'
}

func skipQuoted(src string, i int, q byte) int {
	for i++; i < len(src) && src[i] != q; i++ {
		if src[i] == '\\' {
			i++
		}
	}
	return i + 1
}

func skipRegex(src string, i int) int {
	inClass := false
	for i++; i < len(src); i++ {
		switch src[i] {
		case '\\':
			i++
		case '[':
			inClass = true
		case ']':
			inClass = false
		case '/':
			if !inClass {
				i++
				for i < len(src) && isIdent(src[i]) {
					i++
				}
				return i
			}
		}
	}
	return i
}

func TestLibraryIsES3(t *testing.T) {
	for _, b := range builds(t) {
		for _, p := range es3Problems(string(b.src)) {
			t.Errorf("%s: %s", b.name, p)
		}
	}
}

// TestCheckerRefuses proves each rule of the checker fires, so a clean
// result above means something.
func TestCheckerRefuses(t *testing.T) {
	bad := map[string]string{
		"forEach":        "[1].forEach(function () {});",
		"map":            "var a = [1].map(f);",
		"Object.keys":    "Object.keys(o);",
		"Object.create":  "Object.create(null);",
		"defineProperty": "Object.defineProperty(o, 'x', {});",
		"JSON":           "JSON.stringify(1);",
		"bind":           "f.bind(o);",
		"trim":           "' a'.trim();",
		"Date.now":       "Date.now();",
		"isArray":        "Array.isArray(a);",
		"getter":         "var o = {get x() { return 1; }};",
		"setter":         "var o = {set x(v) {}};",
		"let":            "let x = 1;",
		"const":          "const x = 1;",
		"arrow":          "var f = () => 1;",
		"class":          "class A {}",
		"template":       "var s = `a`;",
		"dot reserved":   "o.default = 1;",
		"dot class":      "o.class;",
		"key reserved":   "var o = {delete: 1};",
		"key new":        "var o = {new: 1};",
		"array comma":    "var a = [1, 2,];",
		"object comma":   "var o = {a: 1, /* c */ };",
		"shorthand":      "var o = {a};",
		"spread":         "f(...a);",
		"default param":  "function f(a = 1) {}",
	}
	for name, src := range bad {
		t.Run(name, func(t *testing.T) {
			if len(es3Problems(src)) == 0 {
				t.Errorf("%q passed the ES3 check", src)
			}
		})
	}
	good := `var o = {'default': 1, a: [1, 2], b: 'x,]'}; o['class'] = /,]/.test('a,]') ? 1 / 2 : 3; // ,]
		var s = ' a'.indexOf('a'); /* ,} */`
	if p := es3Problems(good); len(p) != 0 {
		t.Errorf("good source refused: %v", p)
	}
}
