// Command render renders a Helm chart the way `helm template` does, for the
// tests of deploy/helm/ on machines without Helm (Debian ships none): Go's
// text/template with Sprig's functions, as Helm uses them, plus Helm's own
// (include, tpl, toYaml, toJson, fromYaml, required, fail); values.yaml
// deep-merged with the files given (later ones win, null removes a key);
// .Release (Name, Namespace, Service "Helm", IsInstall) and .Chart (Name,
// Version, AppVersion). Templates whose name starts with "_" are only
// parsed; NOTES.txt is left out, as `helm template` does. The output is one
// YAML stream, each template's documents after "# Source: CHART/templates/FILE".
//
//	render CHART_DIR RELEASE NAMESPACE [VALUES.yaml ...]
package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	yamlv2 "gopkg.in/yaml.v2"
	"gopkg.in/yaml.v3"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "render: "+format+"\n", args...)
	os.Exit(1)
}

func readYAML(path string) map[string]interface{} {
	data, err := os.ReadFile(path)
	if err != nil {
		fail("%v", err)
	}
	out := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &out); err != nil {
		fail("%s: %v", path, err)
	}
	return out
}

// merge lays over onto base as Helm coalesces values: maps merge key by
// key, anything else replaces, and null removes the key.
func merge(base, over map[string]interface{}) map[string]interface{} {
	for k, v := range over {
		if v == nil {
			delete(base, k)
			continue
		}
		if vm, ok := v.(map[string]interface{}); ok {
			if bm, ok := base[k].(map[string]interface{}); ok {
				base[k] = merge(bm, vm)
				continue
			}
		}
		base[k] = v
	}
	return base
}

// toYAML is Helm's toYaml: YAML v2's layout (sigs.k8s.io/yaml), no final newline.
func toYAML(v interface{}) string {
	data, err := yamlv2.Marshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

func main() {
	if len(os.Args) < 4 {
		fail("usage: render CHART_DIR RELEASE NAMESPACE [VALUES.yaml ...]")
	}
	chartDir, release, namespace := os.Args[1], os.Args[2], os.Args[3]
	chart := readYAML(filepath.Join(chartDir, "Chart.yaml"))
	values := readYAML(filepath.Join(chartDir, "values.yaml"))
	for _, f := range os.Args[4:] {
		values = merge(values, readYAML(f))
	}
	name, _ := chart["name"].(string)
	top := map[string]interface{}{
		"Values": values,
		"Release": map[string]interface{}{
			"Name": release, "Namespace": namespace, "Service": "Helm",
			"IsInstall": true, "IsUpgrade": false, "Revision": 1,
		},
		"Chart": map[string]interface{}{
			"Name": name, "Version": chart["version"], "AppVersion": chart["appVersion"],
		},
	}

	root := template.New("chart")
	funcs := sprig.TxtFuncMap()
	funcs["toYaml"] = toYAML
	funcs["fromYaml"] = func(s string) map[string]interface{} {
		out := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(s), &out); err != nil {
			out["Error"] = err.Error()
		}
		return out
	}
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil || v == "" {
			return nil, fmt.Errorf("%s", msg)
		}
		return v, nil
	}
	funcs["fail"] = func(msg string) (string, error) { return "", fmt.Errorf("%s", msg) }
	funcs["include"] = func(name string, data interface{}) (string, error) {
		var buf bytes.Buffer
		err := root.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		err = t.Execute(&buf, data)
		return buf.String(), err
	}
	root.Funcs(funcs).Option("missingkey=zero")

	files, err := filepath.Glob(filepath.Join(chartDir, "templates", "*"))
	if err != nil {
		fail("%v", err)
	}
	sort.Strings(files)
	var rendered []string
	for _, f := range files {
		base := filepath.Base(f)
		if base == "NOTES.txt" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			fail("%v", err)
		}
		tname := name + "/templates/" + base
		if _, err := root.New(tname).Parse(string(data)); err != nil {
			fail("%s: %v", tname, err)
		}
		if !strings.HasPrefix(base, "_") {
			rendered = append(rendered, tname)
		}
	}
	var out bytes.Buffer
	for _, tname := range rendered {
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, tname, top); err != nil {
			fail("%v", err)
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if strings.TrimSpace(text) == "" {
			continue
		}
		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", tname, strings.TrimSpace(text))
	}
	os.Stdout.Write(out.Bytes())
}
