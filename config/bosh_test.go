package config

import (
	"testing"
	"time"
)

// TestBOSH: the [bosh] table's defaults, parsing, and errors naming the
// key and line.
func TestBOSH(t *testing.T) {
	d := Default().BOSH
	if !d.Enabled || d.MaxWait.Duration != time.Minute || d.MaxInactivity.Duration != time.Minute || d.MaxHold != 1 ||
		d.MaxPause.Duration != 2*time.Minute || d.Polling.Duration != 5*time.Second {
		t.Errorf("defaults %+v", d)
	}
	c, err := Parse([]byte("[bosh]\nenabled = false\nmax_wait = \"30s\"\nmax_inactivity = \"90s\"\nmax_hold = 0\nmax_pause = \"5m\"\npolling = \"0s\"\n"), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	if b := c.BOSH; b.Enabled || b.MaxWait.Duration != 30*time.Second || b.MaxInactivity.Duration != 90*time.Second ||
		b.MaxHold != 0 || b.MaxPause.Duration != 5*time.Minute || b.Polling.Duration != 0 {
		t.Errorf("parsed %+v", b)
	}
	for name, tc := range map[string]struct {
		in   string
		want []string
	}{
		"durations": {"[bosh]\nmax_wait = \"0s\"\nmax_inactivity = \"-1s\"\nmax_pause = \"0s\"\npolling = \"-5s\"\n",
			[]string{
				`test.toml:2: bosh.max_wait: must be more than 0s`,
				`test.toml:3: bosh.max_inactivity: must be more than 0s`,
				`test.toml:4: bosh.max_pause: must be more than 0s`,
				`test.toml:5: bosh.polling: must not be negative`,
			}},
		"negative hold": {"[bosh]\nmax_hold = -1\n", []string{`test.toml:2: bosh.max_hold: must not be negative`}},
		"huge hold":     {"[bosh]\nmax_hold = 100\n", []string{`test.toml:2: bosh.max_hold: 100 is absurdly large`}},
		"unknown key":   {"[bosh]\nmax_requests = 3\n", []string{`test.toml:2: bosh.max_requests`}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in), "test.toml")
			checkErrorLines(t, err, tc.want)
		})
	}
}
