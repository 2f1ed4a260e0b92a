// Package policies ships the eligibility policies (one YAML file per city
// or tier, see hub/eligibility) and their example cases inside the binary.
package policies

import (
	"embed"
	"io/fs"
)

//go:embed */*.yaml
var files embed.FS

// FS returns the policy files and their *_cases.yaml files, laid out as in
// this directory ("heilongjiang/daqing.yaml" …), for eligibility.Load and
// eligibility.RunCases.
func FS() fs.FS { return files }
