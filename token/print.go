package token

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Listed is a token with its live connection count, as `polysocket
// token` prints it.
type Listed struct {
	Token
	Connections int `json:"connections"`
}

// WriteList prints tokens as a table, or as indented JSON with asJSON
// (for scripts).
func WriteList(w io.Writer, tokens []Listed, asJSON bool) error {
	if asJSON {
		return WriteJSON(w, tokens)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCONNECTIONS\tLIMIT\tTARGETS\tORIGINS")
	for _, v := range tokens {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", v.Name, v.Connections, limitText(v.Limit),
			strings.Join(v.Targets, " "), strings.Join(v.Origins, " "))
	}
	return tw.Flush()
}

// WriteOne prints one token, a field a line, or as indented JSON with
// asJSON.
func WriteOne(w io.Writer, t Listed, asJSON bool) error {
	if asJSON {
		return WriteJSON(w, t)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "name:\t%s\n", t.Name)
	fmt.Fprintf(tw, "connections:\t%d\n", t.Connections)
	fmt.Fprintf(tw, "limit:\t%s\n", limitText(t.Limit))
	for i, p := range t.Targets {
		fmt.Fprintf(tw, "%s\t%s\n", label(i, "targets:"), p)
	}
	for i, p := range t.Origins {
		fmt.Fprintf(tw, "%s\t%s\n", label(i, "origins:"), p)
	}
	return tw.Flush()
}

// WriteJSON prints v as indented JSON.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// label names the first line of a list only.
func label(i int, name string) string {
	if i == 0 {
		return name
	}
	return ""
}

func limitText(limit int) string {
	if limit == 0 {
		return "none"
	}
	return strconv.Itoa(limit)
}
