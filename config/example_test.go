package config_test

import (
	"fmt"

	"xmppd.dev/xmppd/config"
)

func ExampleParse() {
	_, err := config.Parse([]byte(`
[c2s]
lisen = ":5222"
max_stanza_bytes = "256K"
ping_interval = "4 minutes"

[storage]
driver = "postgres"
`), "config.toml")
	fmt.Println(err)
	// Output:
	// config.toml:3: c2s.lisen: unknown key (did you mean c2s.listen?)
	// config.toml:4: c2s.max_stanza_bytes: want an integer, got string "256K"
	// config.toml:5: c2s.ping_interval: invalid duration "4 minutes" (want a number and a unit such as "30s", "4m" or "1h30m")
	// config.toml:7: storage.dsn: required when storage.driver = "postgres" (want a URL such as "postgres://xmppd@localhost/xmppd" or key=value pairs such as "host=localhost dbname=xmppd")
}

func ExampleLoad() {
	cfg, err := config.Load("") // no file: the defaults
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.Server.Domain, cfg.C2S.Listen, cfg.StorageDSN(), cfg.PublicURL())
	// Output:
	// localhost :5222 data/xmppd.db http://localhost:5280
}
