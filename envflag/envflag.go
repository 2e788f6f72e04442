// Package envflag reads a program's configuration from environment
// variables, each of which is also a command-line flag. A flag given on the
// command line wins over the variable, which wins over the default. Errors
// name the variable and the flag, and say what a valid value looks like;
// secrets are never echoed.
package envflag

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Set is a group of settings for one program.
type Set struct {
	fs     *flag.FlagSet
	getenv func(string) string
	vars   []*setting
	usage  string
}

type setting struct {
	env, flag, def, help string
	secret               bool
	raw                  string // from the flag, when given
	given                bool
	parse                func(string) error
}

// New returns an empty Set for the program name. usage is printed above the
// settings by --help.
func New(name, usage string, getenv func(string) string) *Set {
	s := &Set{fs: flag.NewFlagSet(name, flag.ContinueOnError), getenv: getenv, usage: usage}
	s.fs.SetOutput(io.Discard)
	return s
}

// FlagSet returns the underlying flag set, to add plain flags that have no
// environment variable.
func (s *Set) FlagSet() *flag.FlagSet { return s.fs }

func (s *Set) add(env, name, def, help string, secret bool, parse func(string) error) {
	v := &setting{env: env, flag: name, def: def, help: help, secret: secret, parse: parse}
	s.vars = append(s.vars, v)
	s.fs.Func(name, help, func(x string) error { v.raw, v.given = x, true; return nil })
}

// String declares a string setting.
func (s *Set) String(env, name, def, help string) *string {
	p := new(string)
	s.add(env, name, def, help, false, func(x string) error { *p = x; return nil })
	return p
}

// Secret declares a string setting whose value is never printed.
func (s *Set) Secret(env, name, help string) *string {
	p := new(string)
	s.add(env, name, "", help, true, func(x string) error { *p = x; return nil })
	return p
}

// Int declares an integer setting; min bounds it from below.
func (s *Set) Int(env, name string, def, min int, help string) *int {
	p := new(int)
	s.add(env, name, strconv.Itoa(def), help, false, func(x string) error {
		n, err := strconv.Atoi(strings.TrimSpace(x))
		if err != nil {
			return fmt.Errorf("%q is not a whole number", x)
		}
		if n < min {
			return fmt.Errorf("%d is below the minimum %d", n, min)
		}
		*p = n
		return nil
	})
	return p
}

// Float declares a number setting; min bounds it from below.
func (s *Set) Float(env, name string, def, min float64, help string) *float64 {
	p := new(float64)
	s.add(env, name, strconv.FormatFloat(def, 'f', -1, 64), help, false, func(x string) error {
		n, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", x)
		}
		if n < min {
			return fmt.Errorf("%v is below the minimum %v", n, min)
		}
		*p = n
		return nil
	})
	return p
}

// Duration declares a duration setting (Go syntax: 500ms, 10s, 24h),
// strictly positive, or also 0 when the default is 0 (a setting that is off
// unless given).
func (s *Set) Duration(env, name string, def time.Duration, help string) *time.Duration {
	p := new(time.Duration)
	s.add(env, name, def.String(), help, false, func(x string) error {
		d, err := time.ParseDuration(strings.TrimSpace(x))
		if err != nil {
			return fmt.Errorf("%q is not a duration such as 500ms, 10s or 24h", x)
		}
		if d < 0 || d == 0 && def != 0 {
			return fmt.Errorf("%s must be positive", d)
		}
		*p = d
		return nil
	})
	return p
}

// Bool declares a boolean setting (true/false, 1/0, yes/no).
func (s *Set) Bool(env, name string, def bool, help string) *bool {
	p := new(bool)
	s.add(env, name, strconv.FormatBool(def), help, false, func(x string) error {
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "1", "true", "yes", "on":
			*p = true
		case "0", "false", "no", "off":
			*p = false
		default:
			return fmt.Errorf("%q is not true or false", x)
		}
		return nil
	})
	return p
}

// ErrHelp is returned by Parse when --help was asked for; the usage has
// been written.
var ErrHelp = flag.ErrHelp

// Parse reads the flags in args, then fills every setting from its flag,
// its variable or its default. The first bad value is reported naming the
// variable and the flag. With -h or --help it writes the usage to help and
// returns ErrHelp.
func (s *Set) Parse(args []string, help io.Writer) error {
	if err := s.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			s.Usage(help)
			return ErrHelp
		}
		return err
	}
	for _, v := range s.vars {
		raw, from := v.def, "default"
		if env := s.getenv(v.env); v.env != "" && env != "" {
			raw, from = env, v.env
		}
		if v.given {
			raw, from = v.raw, "--"+v.flag
		}
		if err := v.parse(raw); err != nil {
			if v.secret {
				return fmt.Errorf("%s (--%s): invalid value", v.env, v.flag)
			}
			_ = from
			return fmt.Errorf("%s (--%s): %v", v.env, v.flag, err)
		}
	}
	return nil
}

// Args returns the arguments left after the flags.
func (s *Set) Args() []string { return s.fs.Args() }

// Usage writes the program's usage and every setting with its variable and
// default.
func (s *Set) Usage(w io.Writer) {
	fmt.Fprintln(w, strings.TrimRight(s.usage, "\n"))
	fmt.Fprintln(w, "\nSettings (each environment variable is also a flag; a flag wins):")
	for _, v := range s.vars {
		def := v.def
		switch {
		case v.secret:
			def = "(none; never printed)"
		case def == "":
			def = `""`
		}
		fmt.Fprintf(w, "  --%s, %s\n        %s (default %s)\n", v.flag, v.env, v.help, def)
	}
	var extra []string
	s.fs.VisitAll(func(f *flag.Flag) {
		for _, v := range s.vars {
			if v.flag == f.Name {
				return
			}
		}
		extra = append(extra, fmt.Sprintf("  --%s\n        %s (default %q)", f.Name, f.Usage, f.DefValue))
	})
	if len(extra) > 0 {
		fmt.Fprintln(w, "\nOther flags:")
		fmt.Fprintln(w, strings.Join(extra, "\n"))
	}
}
