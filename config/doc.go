// Package config is the one place chatd's settings are read, checked and
// shown.
//
// Every setting is a field of [Config] with a yaml tag that gives its key,
// such as limits.message_bytes. The key names the setting everywhere:
//
//   - in the YAML file given with --config (or CHATD_CONFIG), nested by the
//     dots: limits: {message_bytes: 8192};
//   - as the environment variable CHATD_ followed by the key in upper case
//     with '.' replaced by '_': CHATD_LIMITS_MESSAGE_BYTES=8192;
//   - as the flag with '.' and '_' replaced by '-': --limits-message-bytes=8192.
//
// [Load] layers these sources on a local viper instance (never viper's global
// one) with the precedence flags > environment > file > [Default]. Durations
// are Go duration strings such as "30s" or "2m"; lists are YAML lists, or
// comma-separated text in the environment and in flags (which may also be
// repeated); an empty environment variable counts as unset.
//
// Mistakes are errors that name what is at fault and what would be valid: a
// key of the file, a CHATD_ variable or a flag that names no setting (with the
// closest name when there is one), a value of the wrong type
// (`history.size: "abc" is not a whole number (CHATD_HISTORY_SIZE)`), and
// every rule of [Config.Validate], whose messages start with the key.
//
// [Config.Masked] hides secrets and [Config.YAML] writes the effective
// settings in the file format, which is what `chatd check-config` prints and
// which Load reads back unchanged.
//
// This is the only package of chatd that imports viper.
package config
