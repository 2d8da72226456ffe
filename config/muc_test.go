package config

import (
	"strings"
	"testing"
)

// TestMUCValidate: the [muc] table's checks and the effective domain.
func TestMUCValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(c *Config)
		err    string // "" for valid
		domain string // MUCDomain() when valid
	}{
		{"default", func(*Config) {}, "", "conference.localhost"},
		{"set and normalised", func(c *Config) { c.MUC.Domain = "Rooms.Example.COM." }, "", "rooms.example.com"},
		{"follows server.domain", func(c *Config) { c.Server.Domain = "example.org" }, "", "conference.example.org"},
		{"the server's own domain", func(c *Config) { c.MUC.Domain = "localhost" }, "muc.domain: \"localhost\" is server.domain", ""},
		{"a JID", func(c *Config) { c.MUC.Domain = "room@conference.localhost" }, "muc.domain: \"room@conference.localhost\" is a JID", ""},
		{"no rooms", func(c *Config) { c.MUC.MaxRoomsPerUser = 0 }, "muc.max_rooms_per_user: 0 is too small", ""},
		{"no occupants", func(c *Config) { c.MUC.MaxOccupants = 0 }, "muc.max_occupants: 0 is too small", ""},
		{"history over its maximum", func(c *Config) { c.MUC.HistoryLength = 101 }, "muc.history_length: 101 is more than muc.max_history_length (100)", ""},
		{"negative history", func(c *Config) { c.MUC.HistoryLength = -1 }, "muc.history_length: -1 is too small", ""},
		{"negative rate", func(c *Config) { c.MUC.MessagesPerSecond = -1 }, "muc.messages_per_second: -1 is too small", ""},
		{"no burst", func(c *Config) { c.MUC.MessageBurst = 0 }, "muc.message_burst: 0 is too small", ""},
		{"no burst without a rate", func(c *Config) { c.MUC.MessagesPerSecond, c.MUC.MessageBurst = 0, 0 }, "", "conference.localhost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.change(&c)
			err := c.Validate()
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.err)
			case tc.err == "" && c.MUCDomain() != tc.domain:
				t.Errorf("MUCDomain() = %q, want %q", c.MUCDomain(), tc.domain)
			}
		})
	}
}
