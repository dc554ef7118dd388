package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// envPrefix starts the name of every environment variable of chatd.
const envPrefix = "CHATD_"

// kind is the type of a setting's value, which decides how text is parsed.
type kind int

const (
	kindString kind = iota
	kindStrings
	kindInt
	kindFloat
	kindBool
	kindDuration
)

var durationType = reflect.TypeOf(time.Duration(0))

// field is one setting: a leaf of Config.
type field struct {
	key    string // YAML key, such as "limits.message_bytes"
	env    string // environment variable, such as "CHATD_LIMITS_MESSAGE_BYTES"
	flag   string // flag name without dashes, such as "limits-message-bytes"
	index  []int  // path of the struct field, for reflect.Value.FieldByIndex
	kind   kind
	usage  string
	secret bool
}

// fields lists every setting in the order of Config; sections lists the keys
// of the nested sections ("auth", "auth.jwt", ...).
var fields, sections = collectFields()

// fieldByKey, fieldByEnv and fieldByFlag look up fields by their names.
var (
	fieldByKey  = map[string]*field{}
	fieldByEnv  = map[string]*field{}
	fieldByFlag = map[string]*field{}
)

func init() {
	for i := range fields {
		f := &fields[i]
		fieldByKey[f.key] = f
		fieldByEnv[f.env] = f
		fieldByFlag[f.flag] = f
	}
}

// collectFields walks the tagged Config struct. It panics on a field type it
// cannot parse, which the tests catch.
func collectFields() ([]field, map[string]bool) {
	var out []field
	secs := map[string]bool{}
	var walk func(t reflect.Type, prefix string, index []int)
	walk = func(t reflect.Type, prefix string, index []int) {
		for i := range t.NumField() {
			sf := t.Field(i)
			name := sf.Tag.Get("yaml")
			if name == "" || name == "-" {
				panic("config: field " + sf.Name + " has no yaml tag")
			}
			key := name
			if prefix != "" {
				key = prefix + "." + name
			}
			idx := append(append([]int(nil), index...), i)
			if sf.Type.Kind() == reflect.Struct {
				secs[key] = true
				walk(sf.Type, key, idx)
				continue
			}
			out = append(out, field{
				key:    key,
				env:    envPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_")),
				flag:   strings.NewReplacer(".", "-", "_", "-").Replace(key),
				index:  idx,
				kind:   kindOf(sf.Type, key),
				usage:  sf.Tag.Get("usage"),
				secret: sf.Tag.Get("secret") == "true",
			})
		}
	}
	walk(reflect.TypeOf(Config{}), "", nil)
	return out, secs
}

func kindOf(t reflect.Type, key string) kind {
	switch {
	case t == durationType:
		return kindDuration
	case t.Kind() == reflect.String:
		return kindString
	case t.Kind() == reflect.Int:
		return kindInt
	case t.Kind() == reflect.Float64:
		return kindFloat
	case t.Kind() == reflect.Bool:
		return kindBool
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return kindStrings
	}
	panic(fmt.Sprintf("config: %s has type %s, which the loader cannot parse", key, t))
}

// get returns the value of f in c.
func (f *field) get(c *Config) reflect.Value {
	return reflect.ValueOf(c).Elem().FieldByIndex(f.index)
}

// parseText parses the text of a flag or an environment variable into the
// Go value of f. Its errors name the value and what would be valid, not the
// key; the caller adds the key.
func (f *field) parseText(s string) (any, error) {
	switch f.kind {
	case kindString:
		return s, nil
	case kindStrings:
		return splitList(s), nil
	case kindInt:
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return nil, fmt.Errorf("%q is too large", s)
			}
			return nil, fmt.Errorf("%q is not a whole number", s)
		}
		return n, nil
	case kindFloat:
		x, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("%q is not a number", s)
		}
		return x, nil
	case kindBool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%q is not true or false", s)
		}
		return b, nil
	case kindDuration:
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%q is not a duration such as \"30s\"", s)
		}
		return d, nil
	}
	panic("config: unknown kind")
}

// convert turns a value that viper returns (text from a flag or the
// environment, a decoded YAML value, or a default) into the Go value of f.
func (f *field) convert(raw any) (any, error) {
	if s, ok := raw.(string); ok {
		return f.parseText(s)
	}
	switch f.kind {
	case kindString:
		// A YAML scalar such as 12345 or true: insist on quotes rather than
		// guess how YAML spelled it (0x10, 1e3, yes).
		return nil, fmt.Errorf("%s is not a string; quote it", describe(raw))
	case kindStrings:
		switch v := raw.(type) {
		case []string:
			return v, nil
		case []any:
			var out []string
			for _, e := range v {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("list item %s is not a string; quote it", describe(e))
				}
				out = append(out, s)
			}
			return out, nil
		}
		return nil, fmt.Errorf("%s is not a list of strings", describe(raw))
	case kindInt:
		switch v := raw.(type) {
		case int:
			return v, nil
		case int64:
			return int(v), nil
		case uint64:
			return nil, fmt.Errorf("%d is too large", v)
		case float64:
			if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
				return int(v), nil
			}
		}
		return nil, fmt.Errorf("%s is not a whole number", describe(raw))
	case kindFloat:
		switch v := raw.(type) {
		case float64:
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				return v, nil
			}
		case int:
			return float64(v), nil
		case int64:
			return float64(v), nil
		case uint64:
			return float64(v), nil
		}
		return nil, fmt.Errorf("%s is not a number", describe(raw))
	case kindBool:
		if b, ok := raw.(bool); ok {
			return b, nil
		}
		return nil, fmt.Errorf("%s is not true or false", describe(raw))
	case kindDuration:
		switch v := raw.(type) {
		case time.Duration:
			return v, nil
		case int:
			if v == 0 {
				return time.Duration(0), nil
			}
		}
		return nil, fmt.Errorf("%s is not a duration such as \"30s\"", describe(raw))
	}
	panic("config: unknown kind")
}

// format writes a value of f as text that parseText reads back.
func (f *field) format(v reflect.Value) string {
	switch f.kind {
	case kindStrings:
		return strings.Join(v.Interface().([]string), ",")
	case kindDuration:
		return formatDuration(time.Duration(v.Int()))
	case kindFloat:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	default:
		return fmt.Sprint(v.Interface())
	}
}

// formatDuration is time.Duration.String without trailing zero units:
// "2m" rather than "2m0s", "1h" rather than "1h0m0s".
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// splitList splits comma-separated text, trimming spaces and dropping empty
// items, so "a, b," is [a b] and "" is nil.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// describe names a decoded YAML value in an error message.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case map[string]any, map[any]any:
		return "a mapping"
	case []any:
		return "a list"
	case nil:
		return "null"
	}
	return fmt.Sprint(v)
}

// suggest returns the candidate closest to name when it is close enough to
// be a likely typo, or "".
func suggest(name string, candidates []string) string {
	best, bestDist := "", max(1, len(name)/4)+1
	for _, c := range candidates {
		if d := editDistance(name, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the Damerau-Levenshtein distance (with adjacent
// transpositions) between a and b.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// didYouMean is " (did you mean X?)" for a close candidate, else "".
func didYouMean(name string, candidates []string) string {
	if s := suggest(name, candidates); s != "" {
		return fmt.Sprintf(" (did you mean %s?)", s)
	}
	return ""
}
