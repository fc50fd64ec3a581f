// Reference answers of Go's regexp package for the filter tests: reads JSON
// {"patterns": [{"pattern": "...", "inputs": ["..."]}]} on stdin and writes, per pattern,
// {"error": "<Go's message>"} or {"matches": [true, false, ...]} (regexp.MatchString).
package main

import (
	"encoding/json"
	"os"
	"regexp"
)

type query struct {
	Pattern string   `json:"pattern"`
	Inputs  []string `json:"inputs"`
}

type answer struct {
	Error   string `json:"error,omitempty"`
	Matches []bool `json:"matches"`
}

func main() {
	var in struct {
		Patterns []query `json:"patterns"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		panic(err)
	}
	out := make([]answer, 0, len(in.Patterns))
	for _, q := range in.Patterns {
		re, err := regexp.Compile(q.Pattern)
		if err != nil {
			out = append(out, answer{Error: err.Error(), Matches: []bool{}})
			continue
		}
		m := make([]bool, len(q.Inputs))
		for i, s := range q.Inputs {
			m[i] = re.MatchString(s)
		}
		out = append(out, answer{Matches: m})
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		panic(err)
	}
}
