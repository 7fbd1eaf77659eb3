package ruletest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// CollectFiles expands directories into their *.yaml and *.yml files,
// recursively and sorted, skipping directories named "policies" (where
// policy_file targets live). Named files are taken as they are.
func CollectFiles(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, a)
			continue
		}
		var found []string
		err = filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "policies" && p != a {
				return filepath.SkipDir
			}
			if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
				found = append(found, p)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("%s: no *.yaml test files", a)
		}
		sort.Strings(found)
		out = append(out, found...)
	}
	return out, nil
}

// ParseAll parses every file; the error joins every file's errors.
func ParseAll(paths []string) ([]*File, error) {
	var files []*File
	var errs []error
	for _, p := range paths {
		f, err := ParseFile(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		files = append(files, f)
	}
	return files, errors.Join(errs...)
}
