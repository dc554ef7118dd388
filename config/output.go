package config

import (
	"bytes"
	"net/url"
	"strings"

	"go.yaml.in/yaml/v3"
)

// mask replaces a secret in Masked.
const mask = "***"

// Masked returns a copy of c in which every non-empty secret (the fields
// tagged secret:"true" and the password of redis.url) is "***", for logs and
// `chatd check-config`.
func (c Config) Masked() Config {
	out := c
	out.Redis.Addrs = append([]string(nil), c.Redis.Addrs...)
	out.CORS.Origins = append([]string(nil), c.CORS.Origins...)
	for i := range fields {
		f := &fields[i]
		if v := f.get(&out); f.secret && v.String() != "" {
			v.SetString(mask)
		}
	}
	out.Redis.URL = maskURL(c.Redis.URL)
	return out
}

// maskURL hides the password of a Redis URL. A URL that does not parse but
// might hold credentials is hidden whole.
func maskURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if strings.Contains(s, "@") {
			return mask
		}
		return s
	}
	if u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); !ok {
		return s
	}
	// url.URL.String would escape the mask, so put the user info back by hand.
	user := url.User(u.User.Username()).String()
	u.User = nil
	rest := strings.TrimPrefix(u.String(), u.Scheme+"://")
	return u.Scheme + "://" + user + ":" + mask + "@" + rest
}

// YAML returns c as a YAML document with the keys Load reads, each under a
// comment saying what it means, so Load reads it back as the same Config.
// Call it on Masked() before showing it to people.
func (c Config) YAML() ([]byte, error) {
	root := &yaml.Node{Kind: yaml.MappingNode}
	sectionNodes := map[string]*yaml.Node{"": root}
	var parentOf func(key string) *yaml.Node
	parentOf = func(key string) *yaml.Node {
		section := ""
		if i := strings.LastIndexByte(key, '.'); i >= 0 {
			section = key[:i]
		}
		if n, ok := sectionNodes[section]; ok {
			return n
		}
		parent := parentOf(section)
		n := &yaml.Node{Kind: yaml.MappingNode}
		parent.Content = append(parent.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Value: section[strings.LastIndexByte(section, '.')+1:]}, n)
		sectionNodes[section] = n
		return n
	}
	for i := range fields {
		f := &fields[i]
		var val yaml.Node
		v := f.get(&c)
		var err error
		switch f.kind {
		case kindDuration:
			err = val.Encode(f.format(v))
		case kindStrings:
			list := v.Interface().([]string)
			if list == nil {
				list = []string{}
			}
			err = val.Encode(list)
		default:
			err = val.Encode(v.Interface())
		}
		if err != nil {
			return nil, err
		}
		parent := parentOf(f.key)
		key := &yaml.Node{Kind: yaml.ScalarNode, Value: f.key[strings.LastIndexByte(f.key, '.')+1:], HeadComment: f.usage}
		parent.Content = append(parent.Content, key, &val)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
