package config

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// ErrHelp is returned by Load when the arguments ask for help (-h or
// --help). The caller prints Usage and exits successfully.
var ErrHelp = errors.New("help requested")

// configFlag and configEnv name the YAML file to read.
const (
	configFlag = "config"
	configEnv  = envPrefix + "CONFIG"
)

// Load reads the settings from args (flags only: no program name, no
// subcommand), the environment seen through getenv and the YAML file named by
// --config (or CHATD_CONFIG), in that order of precedence over Default. It
// fills an empty instance.id and returns the result of Validate.
//
// An empty environment variable counts as unset. A CHATD_ variable that
// names no setting is an error; since getenv cannot list names, Load takes
// the candidates from the process environment (os.Environ) and reports those
// for which getenv returns a value, so a getenv that hides the process
// environment hides its mistakes too.
//
// Every error names the flag, variable, file or key at fault; several are
// joined with errors.Join. With -h or --help Load returns ErrHelp. A nil
// getenv is an empty environment.
func Load(args []string, getenv func(string) string) (*Config, error) {
	return load(args, getenv, os.Environ())
}

func load(args []string, getenv func(string) string, environ []string) (*Config, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	flags := newFlagSet()
	if err := flags.Parse(args); err != nil {
		return nil, flagError(err)
	}
	if flags.NArg() > 0 {
		return nil, fmt.Errorf("flags: unexpected argument %q; give settings as flags such as --listen=:3000 (a bool flag takes its value after '=')", flags.Arg(0))
	}

	// A local viper instance layers the sources: bound flags over its config
	// layer over defaults. Viper reads the environment only through
	// os.Getenv, so the environment is merged over the file into the config
	// layer instead of using viper's environment layer.
	v := viper.New()
	def := Default()
	for i := range fields {
		f := &fields[i]
		v.SetDefault(f.key, f.get(&def).Interface())
		if err := v.BindPFlag(f.key, flags.Lookup(f.flag)); err != nil {
			return nil, fmt.Errorf("flags: %w", err)
		}
	}

	var problems []error
	path, _ := flags.GetString(configFlag)
	if !flags.Changed(configFlag) {
		path = getenv(configEnv)
	}
	var fileValues map[string]any
	var fileLines map[string]int
	if path != "" {
		var err error
		var fileProblems []error
		fileValues, fileLines, fileProblems, err = readFile(path)
		if err != nil {
			return nil, err
		}
		problems = append(problems, fileProblems...)
		if err := v.MergeConfigMap(nest(fileValues)); err != nil {
			return nil, fmt.Errorf("config file %q: %w", path, err)
		}
	}

	envValues := map[string]any{}
	for _, f := range fields {
		if s := getenv(f.env); s != "" {
			envValues[f.key] = s
		}
	}
	problems = append(problems, unknownEnv(environ, getenv)...)
	if err := v.MergeConfigMap(nest(envValues)); err != nil {
		return nil, fmt.Errorf("environment: %w", err)
	}

	// origin says where the value of a key came from, for error messages.
	origin := func(f *field) string {
		switch {
		case flags.Changed(f.flag):
			return "flag --" + f.flag
		case envValues[f.key] != nil:
			return f.env
		case fileValues[f.key] != nil:
			return fmt.Sprintf("config file %q line %d", path, fileLines[f.key])
		}
		return "default"
	}

	var cfg Config
	for i := range fields {
		f := &fields[i]
		val, err := f.convert(v.Get(f.key))
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: %w (%s)", f.key, err, origin(f)))
			continue
		}
		f.get(&cfg).Set(reflect.ValueOf(val))
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}

	if cfg.Instance.ID == "" {
		cfg.Instance.ID = defaultInstanceID()
	}
	// The default drain window follows a shorter shutdown.timeout (a third
	// of it) instead of making a valid timeout an error; a drain that was
	// set explicitly is checked as given.
	if f := fieldByKey["shutdown.drain"]; f != nil && origin(f) == "default" && cfg.Shutdown.Drain >= cfg.Shutdown.Timeout {
		cfg.Shutdown.Drain = cfg.Shutdown.Timeout / 3
	}
	// A listen address left at its default is loopback only in dev mode.
	if f := fieldByKey["listen"]; f != nil && origin(f) == "default" && cfg.Auth.Mode != "dev" {
		cfg.Listen = defaultJWTListen
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// Usage is the help text of chatd's flags, for --help.
func Usage() string {
	flags := newFlagSet()
	var b strings.Builder
	b.WriteString("Settings come from flags, CHATD_ environment variables and a YAML file\n")
	b.WriteString("(--config), in that order of precedence, over the defaults shown.\n")
	b.WriteString("The flag --limits-message-bytes is the variable CHATD_LIMITS_MESSAGE_BYTES\n")
	b.WriteString("and the YAML key limits.message_bytes (limits: {message_bytes: ...}).\n")
	b.WriteString("Durations are written like 30s or 2m; lists are comma-separated.\n\n")
	b.WriteString("Flags:\n")
	b.WriteString(flags.FlagUsagesWrapped(120))
	return b.String()
}

// flagValue is the pflag.Value of one setting. Set parses strictly, so a bad
// value fails with a message of this package, and keeps the canonical text,
// which viper reads back.
type flagValue struct {
	f       *field
	text    string
	changed bool
}

func (v *flagValue) String() string { return v.text }

func (v *flagValue) Set(s string) error {
	x, err := v.f.parseText(s)
	if err != nil {
		return err
	}
	text := v.f.format(reflect.ValueOf(x))
	if v.f.kind == kindStrings && v.changed && v.text != "" && text != "" {
		text = v.text + "," + text // --cors-origins a --cors-origins b
	}
	v.text, v.changed = text, true
	return nil
}

// Type names the value in --help. Viper converts int and bool flags with
// package cast, which is lossless on the canonical text; every other type
// name reaches viper as the text itself.
func (v *flagValue) Type() string {
	switch v.f.kind {
	case kindStrings:
		return "strings"
	case kindInt:
		return "int"
	case kindFloat:
		return "float64"
	case kindBool:
		return "bool"
	case kindDuration:
		return "duration"
	}
	return "string"
}

// newFlagSet defines a flag for every setting plus --config.
func newFlagSet() *pflag.FlagSet {
	flags := pflag.NewFlagSet("chatd", pflag.ContinueOnError)
	flags.SetOutput(io.Discard)
	flags.Usage = func() {}
	flags.SortFlags = false
	flags.String(configFlag, "", "YAML file of settings, keyed like history.size (env "+configEnv+")")
	def := Default()
	for i := range fields {
		f := &fields[i]
		fv := &flagValue{f: f, text: f.format(f.get(&def))}
		fl := flags.VarPF(fv, f.flag, "", f.usage+" (env "+f.env+")")
		if f.kind == kindBool {
			fl.NoOptDefVal = "true"
		}
	}
	return flags
}

// flagError rewrites an error of pflag so that it names the setting or the
// flag at fault.
func flagError(err error) error {
	if errors.Is(err, pflag.ErrHelp) {
		return ErrHelp
	}
	var invalid *pflag.InvalidValueError
	if errors.As(err, &invalid) {
		if f := fieldByFlag[invalid.GetFlag().Name]; f != nil {
			return fmt.Errorf("%s: %w (flag --%s)", f.key, invalid.Unwrap(), f.flag)
		}
	}
	var notExist *pflag.NotExistError
	if errors.As(err, &notExist) && notExist.GetSpecifiedShortnames() == "" {
		names := []string{"--" + configFlag}
		for _, f := range fields {
			names = append(names, "--"+f.flag)
		}
		name := "--" + notExist.GetSpecifiedName()
		return fmt.Errorf("flags: unknown flag %s%s", name, didYouMean(name, names))
	}
	return fmt.Errorf("flags: %w", err)
}

// unknownEnv reports every CHATD_ variable of environ that getenv sees and
// that names no setting.
func unknownEnv(environ []string, getenv func(string) string) []error {
	known := []string{configEnv}
	for _, f := range fields {
		known = append(known, f.env)
	}
	var names []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix) || slices.Contains(known, name) || slices.Contains(names, name) {
			continue
		}
		if getenv(name) != "" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var errs []error
	for _, name := range names {
		errs = append(errs, fmt.Errorf("environment: unknown variable %s%s", name, didYouMean(name, known)))
	}
	return errs
}

// readFile reads the YAML file at path. It returns the value and line of
// every setting it sets, keyed like "history.size", and a problem for each
// key that names no setting. err is set when the file cannot be read or
// parsed at all.
func readFile(path string) (values map[string]any, lines map[string]int, problems []error, err error) {
	data, err := os.ReadFile(path) //nolint:gosec // the operator names this file
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, nil, nil, fmt.Errorf("config file %q: %w", path, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, nil, fmt.Errorf("config file %q: %w", path, err)
	}
	values, lines = map[string]any{}, map[string]int{}
	if len(doc.Content) == 0 {
		return values, lines, nil, nil // empty file
	}
	root := doc.Content[0]
	if isNull(root) {
		return values, lines, nil, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, nil, nil, fmt.Errorf("config file %q: line %d: expected a mapping of keys, such as \"listen: :3000\"", path, root.Line)
	}

	candidates := make([]string, 0, len(fields)+len(sections))
	for _, f := range fields {
		candidates = append(candidates, f.key)
	}
	for s := range sections {
		candidates = append(candidates, s)
	}
	slices.Sort(candidates)

	problem := func(line int, format string, args ...any) {
		problems = append(problems, fmt.Errorf("config file %q: line %d: %s", path, line, fmt.Sprintf(format, args...)))
	}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if val.Kind == yaml.AliasNode && val.Alias != nil {
				val = val.Alias
			}
			if k.Kind != yaml.ScalarNode {
				problem(k.Line, "a key must be a plain name")
				continue
			}
			key := k.Value
			if prefix != "" {
				key = prefix + "." + key
			}
			switch {
			case fieldByKey[key] != nil:
				if _, dup := lines[key]; dup {
					problem(k.Line, "key %q is set twice (also on line %d)", key, lines[key])
					continue
				}
				var x any
				if err := val.Decode(&x); err != nil {
					problem(k.Line, "%s: %v", key, err)
					continue
				}
				lines[key] = k.Line
				if x != nil { // a null value leaves the default
					values[key] = x
				}
			case sections[key]:
				switch {
				case val.Kind == yaml.MappingNode:
					walk(val, key)
				case isNull(val):
				default:
					problem(k.Line, "%q is a section; put its keys under it, such as %s", key, firstKeyUnder(key))
				}
			default:
				problem(k.Line, "unknown key %q%s", key, didYouMean(key, candidates))
			}
		}
	}
	walk(root, "")
	return values, lines, problems, nil
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func firstKeyUnder(section string) string {
	for _, f := range fields {
		if strings.HasPrefix(f.key, section+".") {
			return f.key
		}
	}
	return section
}

// nest turns {"a.b": 1} into {"a": {"b": 1}}, the shape of viper's config
// layer.
func nest(flat map[string]any) map[string]any {
	out := map[string]any{}
	for key, val := range flat {
		parts := strings.Split(key, ".")
		m := out
		for _, p := range parts[:len(parts)-1] {
			next, ok := m[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[p] = next
			}
			m = next
		}
		m[parts[len(parts)-1]] = val
	}
	return out
}

// defaultInstanceID is the host name (reduced to the characters an instance
// id allows), "-" and 6 random hex digits.
func defaultInstanceID() string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if isIDChar(r) {
			return r
		}
		return '-'
	}, host)
	host = strings.Trim(host, "-")
	if host == "" {
		host = "chatd"
	}
	if len(host) > maxInstanceID-7 {
		host = host[:maxInstanceID-7]
	}
	var b [3]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return host + "-" + hex.EncodeToString(b[:])
}
