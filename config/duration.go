package config

import (
	"fmt"
	"time"
)

// Duration is a time.Duration written in the file as a string that
// time.ParseDuration accepts, such as "30s", "4m" or "1h30m".
type Duration struct {
	time.Duration
}

// UnmarshalText parses a duration such as "30s".
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf(`invalid duration %q (want a number and a unit such as "30s", "4m" or "1h30m")`, text)
	}
	d.Duration = v
	return nil
}

// MarshalText formats d as time.Duration.String does, such as "4m0s".
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(d.Duration.String()), nil
}
