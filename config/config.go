package config

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Config is the whole configuration file. Each field is one TOML table.
// The zero value is not usable; start from [Default], [Load] or [Parse].
type Config struct {
	Server  Server  `toml:"server"`
	Log     Log     `toml:"log"`
	Storage Storage `toml:"storage"`
	C2S     C2S     `toml:"c2s"`
	Auth    Auth    `toml:"auth"`
	Roster  Roster  `toml:"roster"`
	Offline Offline `toml:"offline"`
	MUC     MUC     `toml:"muc"`
	MAM     MAM     `toml:"mam"`
	PEP     PEP     `toml:"pep"`
	VCard   VCard   `toml:"vcard"`
	Private Private `toml:"private"`
	Push    Push    `toml:"push"`
	HTTP    HTTP    `toml:"http"`
	TLS     TLS     `toml:"tls"`
	Web     Web     `toml:"web"`
	BOSH    BOSH    `toml:"bosh"`

	HTTPUpload HTTPUpload `toml:"httpupload"`
	Caps       Caps       `toml:"caps"`
	ExtDisco   ExtDisco   `toml:"extdisco"`
	Component  Component  `toml:"component"`
	S2S        S2S        `toml:"s2s"`
}

// Server is the [server] table: who the server is and where it keeps its files.
type Server struct {
	// Domain is the XMPP domain the server hosts, the part after the @ in its
	// users' addresses. Validate stores it normalised (lower case, Unicode).
	Domain string `toml:"domain"`
	// DataDir holds the SQLite database, uploaded files and the self-signed
	// certificate made when [tls] names none. It is created if missing.
	DataDir string `toml:"data_dir"`
	// SoftwareVersion makes the server answer XEP-0092 software version
	// queries with its name and version.
	SoftwareVersion bool `toml:"software_version"`
	// Contact is the [server.contact] table: addresses for reaching the
	// server's people, in its disco#info (XEP-0157).
	Contact Contact `toml:"contact"`
}

// Log is the log table: what the server logs, and how.
type Log struct {
	// Level is the lowest level logged: "debug", "info", "warn" or "error".
	Level string `toml:"level"`
	// Format is "text" (log/slog's TextHandler) or "json" (JSONHandler).
	Format string `toml:"format"`
}

// DriverSQLite and DriverPostgres are the values Storage.Driver accepts.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// Storage is the [storage] table: the database.
type Storage struct {
	// Driver is DriverSQLite or DriverPostgres.
	Driver string `toml:"driver"`
	// DSN says where the database is. For sqlite it is a file path, and
	// empty means <data_dir>/xmppd.db. For postgres it is a libpq URL
	// (postgres://user@host/db) or key=value string, and it is required.
	// Use [Config.StorageDSN] for the effective value.
	DSN string `toml:"dsn"`
}

// C2S is the [c2s] table: client connections and the limits on each session.
type C2S struct {
	// Listen is the host:port for client connections that start in plain
	// text and upgrade with STARTTLS. An empty host means all interfaces.
	Listen string `toml:"listen"`
	// DirectTLSListen is the host:port for XEP-0368 direct TLS client
	// connections; "" disables it.
	DirectTLSListen string `toml:"direct_tls_listen"`
	// RequireSTARTTLS refuses authentication on Listen until the client has
	// started TLS.
	RequireSTARTTLS bool `toml:"require_starttls"`
	// HandshakeTimeout is the time a new connection has to finish TLS, SASL
	// and resource binding; it is also the idle timeout before authentication.
	HandshakeTimeout Duration `toml:"handshake_timeout"`
	// MaxStanzaBytes bounds the size of one stanza as read from the wire.
	MaxStanzaBytes int `toml:"max_stanza_bytes"`
	// MaxDepth bounds the XML nesting depth within one stanza.
	MaxDepth int `toml:"max_depth"`
	// SendQueueStanzas bounds the number of stanzas waiting to be written to
	// one session; past it the session is closed as a slow consumer.
	SendQueueStanzas int `toml:"send_queue_stanzas"`
	// SendQueueBytes bounds the bytes waiting to be written to one session.
	SendQueueBytes int `toml:"send_queue_bytes"`
	// WriteTimeout bounds one flush to the client; a flush that takes longer
	// (at least seven eighths of it, see c2s) closes the session.
	WriteTimeout Duration `toml:"write_timeout"`
	// PingInterval is how long a session may be silent before the server
	// sends it an XEP-0199 ping; 0 disables server pings.
	PingInterval Duration `toml:"ping_interval"`
	// PingTimeout is how long the server waits for the answer to its ping
	// before it closes the session.
	PingTimeout Duration `toml:"ping_timeout"`
	// ReadRate bounds the bytes per second one session may send; past it
	// the server stops reading from it for a while (TCP pushes back on the
	// client) rather than disconnecting it. Bursts up to MaxStanzaBytes
	// twice pass at once. 0 disables the limit.
	ReadRate int `toml:"read_rate"`
	// ParkAfter is how long a client may be silent before its session
	// gives back its read goroutine and stack until it sends again
	// (Linux); 0 keeps them.
	ParkAfter Duration `toml:"park_after"`
	// ProxyProtocol makes both client listeners accept a PROXY protocol
	// header (v1 or v2, as HAProxy and cloud load balancers send it) from
	// the peers in ProxyNetworks, so that throttling, limits and logs see
	// the client's address rather than the proxy's.
	ProxyProtocol bool `toml:"proxy_protocol"`
	// ProxyNetworks are the CIDRs of the proxies allowed to send the
	// header; a connection from them must start with one, and one from
	// anywhere else must not.
	ProxyNetworks []string `toml:"proxy_networks"`
	// MaxConnections bounds the client connections open at once; past it a
	// new one gets <policy-violation/>. 0 sets no bound.
	MaxConnections int `toml:"max_connections"`
	// MaxConnectionsPerAddress bounds the connections open at once from one
	// address (an IPv6 /64); 0 sets no bound.
	MaxConnectionsPerAddress int `toml:"max_connections_per_address"`
	// ConnectionRatePerAddress is how many new connections per second one
	// address may open once ConnectionBurstPerAddress is spent; 0 sets no
	// limit.
	ConnectionRatePerAddress int `toml:"connection_rate_per_address"`
	// ConnectionBurstPerAddress is how many connections one address may
	// open at once before ConnectionRatePerAddress applies.
	ConnectionBurstPerAddress int `toml:"connection_burst_per_address"`
	// MaxResourcesPerAccount bounds the sessions bound to one account at
	// once; binding one more gets <resource-constraint/>. 0 sets no bound.
	MaxResourcesPerAccount int `toml:"max_resources_per_account"`
	// MaxUnackedStanzas bounds the stanzas a session with stream
	// management (XEP-0198) keeps until the client acknowledges them; past
	// it the session is closed and they are stored as undelivered.
	MaxUnackedStanzas int `toml:"max_unacked_stanzas"`
	// ResumeTimeout is how long a stream-managed session whose connection
	// was lost waits, still online, for its client to resume it on a new
	// connection (XEP-0198); "0s" offers no resumption.
	ResumeTimeout Duration `toml:"resume_timeout"`
}

// Auth is the [auth] table: SASL and the throttling of wrong credentials.
type Auth struct {
	// SCRAMIterations is the PBKDF2 iteration count used when a password is
	// set; existing credentials keep the count they were stored with.
	SCRAMIterations int `toml:"scram_iterations"`
	// LegacySCRAMSHA1 is "auto": while accounts with SCRAM-SHA-1 keys
	// only exist (imported from Openfire), SCRAM-SHA-256 is not offered,
	// so that clients choose SCRAM-SHA-1; or "off": SCRAM-SHA-256 is
	// always offered, and such accounts log in only with clients that
	// choose SCRAM-SHA-1 or PLAIN.
	LegacySCRAMSHA1 string `toml:"legacy_scram_sha1"`
	// MaxFailures is how many wrong credentials one address may send for
	// one account within FailureWindow before that address is refused for
	// that account for Lockout. Other accounts behind the same address are
	// not affected. 0 turns all throttling off.
	MaxFailures int `toml:"max_failures"`
	// FailureWindow is the period over which failures are counted.
	FailureWindow Duration `toml:"failure_window"`
	// Lockout is how long attempts are refused once a limit is reached.
	Lockout Duration `toml:"lockout"`
	// FailureDelay is added to the answer to each wrong credential,
	// multiplied by the address's recent failures for that account and
	// capped at 5 times FailureDelay; 0 adds no delay.
	FailureDelay Duration `toml:"failure_delay"`
	// AccountMaxFailures is how many wrong credentials for one account,
	// from any addresses within FailureWindow, refuse that account for
	// Lockout, except from networks it logged in from within
	// RememberLogins. 0 sets no such limit.
	AccountMaxFailures int `toml:"account_max_failures"`
	// AddressFailuresPerMinute is how many wrong credentials one address
	// may send in a minute, for all accounts together, before it is
	// refused for a minute, except for accounts that logged in from its
	// network within RememberLogins. 0 sets no such limit.
	AddressFailuresPerMinute int `toml:"address_failures_per_minute"`
	// RememberLogins is how long the network (/24 or /64) of a successful
	// login is remembered for the exemptions above; 0 remembers none.
	RememberLogins Duration `toml:"remember_logins"`
	// TrustedNetworks are CIDRs whose attempts are never throttled.
	TrustedNetworks []string `toml:"trusted_networks"`
}

// Roster is the [roster] table: contact lists (RFC 6121).
type Roster struct {
	// MaxItems bounds each user's roster: contacts plus unanswered
	// subscription requests. A roster set over it gets <not-allowed/>.
	MaxItems int `toml:"max_items"`
	// SharedGroupsReload is how often the server looks for changes to the
	// shared roster groups made while it runs (xmppd group).
	SharedGroupsReload Duration `toml:"shared_groups_reload"`
}

// Offline is the [offline] table: messages kept for users who are not
// online (XEP-0160).
type Offline struct {
	// MaxMessages bounds the messages kept for one user; past it a message
	// is refused with <service-unavailable/> (RFC 6121 §8.5.2.1.1) and not
	// stored. 0 turns offline storage off.
	MaxMessages int `toml:"max_messages"`
	// MaxBytes bounds the bytes of the messages kept for one user (their
	// stanzas as stored); a message that would take the user past it is
	// refused like one past MaxMessages. 0 sets no bound in bytes.
	MaxBytes int `toml:"max_bytes"`
	// MaxAge is how long a message is kept before it is deleted unread.
	MaxAge Duration `toml:"max_age"`
	// SweepInterval is how often messages older than MaxAge are deleted.
	SweepInterval Duration `toml:"sweep_interval"`
}

// MAM is the [mam] table: the message archive (XEP-0313) of every account
// and of the rooms that keep one.
type MAM struct {
	// Enabled keeps the archives and answers their queries.
	Enabled bool `toml:"enabled"`
	// Default is which of a user's 1:1 messages are archived until the
	// user sets preferences: "always", "roster" (with contacts in the
	// roster only) or "never".
	Default string `toml:"default"`
	// MaxAge is how long a message is kept; 0 keeps it until the user
	// or an admin deletes it.
	MaxAge Duration `toml:"max_age"`
	// MaxMessagesPerUser bounds one archive (an account's or a room's);
	// past it the oldest are deleted by the sweep. 0 sets no bound.
	MaxMessagesPerUser int `toml:"max_messages_per_user"`
	// SweepInterval is how often what MaxAge and MaxMessagesPerUser
	// exclude is deleted.
	SweepInterval Duration `toml:"sweep_interval"`
	// FlushInterval is the longest an archived message waits in memory
	// before it is written: what a crash can lose. Writing in batches
	// keeps the database off each message's delivery path.
	FlushInterval Duration `toml:"flush_interval"`
	// FlushMessages writes a batch as soon as it holds this many archived
	// copies (a message between two local users is two: one per archive).
	FlushMessages int `toml:"flush_messages"`
	// Rooms keeps an archive for each room whose configuration says so
	// (persistent rooms by default).
	Rooms bool `toml:"rooms"`
}

// PEP is the [pep] table: personal eventing (XEP-0163), the XEP-0060
// service on every account that OMEMO, avatars and bookmarks use.
type PEP struct {
	// Enabled runs the service.
	Enabled bool `toml:"enabled"`
	// MaxNodesPerAccount bounds the nodes of one account; creating one
	// more is refused with <not-allowed/><max-nodes-exceeded/>. 0 sets no
	// bound.
	MaxNodesPerAccount int `toml:"max_nodes_per_account"`
	// MaxItemsPerNode bounds the items one node keeps: the most
	// pubsub#max_items may be, and what "max" means.
	MaxItemsPerNode int `toml:"max_items_per_node"`
	// MaxPayloadBytes bounds one item's payload; a bigger one is refused
	// with <not-acceptable/><payload-too-big/>.
	MaxPayloadBytes int `toml:"max_payload_bytes"`
}

// VCard is the [vcard] table: vCards (XEP-0054) and the photo hashes in
// presence (XEP-0153).
type VCard struct {
	// MaxBytes bounds one vCard as stored (the element as set); a set
	// over it is refused with <not-acceptable/>.
	MaxBytes int `toml:"max_bytes"`
}

// Private is the [private] table: private XML storage (XEP-0049).
type Private struct {
	// MaxBytes bounds what one account stores under one namespace; a set
	// over it is refused with <not-acceptable/>.
	MaxBytes int `toml:"max_bytes"`
	// MaxItems bounds the namespaces one account stores something under;
	// a set of one more is refused with <resource-constraint/>.
	MaxItems int `toml:"max_items"`
}

// Push is the [push] table: push notifications to mobile clients' app
// servers (XEP-0357).
type Push struct {
	// Enabled lets clients register for push notifications (and sends
	// them).
	Enabled bool `toml:"enabled"`
	// IncludeBody puts the message's body into the notification's
	// summary (last-message-body); off, only the count and the sender go
	// to the app server (and on to Google's or Apple's push service).
	IncludeBody bool `toml:"include_body"`
	// MaxRegistrations bounds the registrations (app server and node:
	// one per device, in practice) of one account; enabling one more
	// removes the oldest.
	MaxRegistrations int `toml:"max_registrations"`
	// AckTimeout is how long a connected client with stream management
	// has to acknowledge a message before its app server is told anyway:
	// a phone asleep behind a half-open connection. "0s": never.
	AckTimeout Duration `toml:"ack_timeout"`
}

// MUC is the [muc] table: the XEP-0045 multi-user chat service.
type MUC struct {
	// Enabled runs the service.
	Enabled bool `toml:"enabled"`
	// Domain is the service's domain; "" means "conference.<server.domain>".
	// Use [Config.MUCDomain] for the effective value.
	Domain string `toml:"domain"`
	// MaxRoomsPerUser bounds the rooms one user may have created that
	// still exist; creating one more is refused with <not-allowed/>.
	MaxRoomsPerUser int `toml:"max_rooms_per_user"`
	// MaxOccupants bounds the occupants of one room; a room's own maximum
	// (muc#roomconfig_maxusers) cannot be set above it.
	MaxOccupants int `toml:"max_occupants"`
	// HistoryLength is how many messages a new room keeps for its
	// discussion history.
	HistoryLength int `toml:"history_length"`
	// MaxHistoryLength bounds the history length a room owner may set.
	MaxHistoryLength int `toml:"max_history_length"`
	// MessagesPerSecond is the rate at which one occupant may send
	// messages to a room; 0 sets no limit.
	MessagesPerSecond int `toml:"messages_per_second"`
	// MessageBurst is how many messages an occupant may send at once
	// before MessagesPerSecond applies.
	MessageBurst int `toml:"message_burst"`
}

// HTTP is the [http] table: the HTTP listeners, which serve XEP-0363
// uploads and downloads ([HTTPUpload]), the WebSocket, BOSH ([BOSH]),
// host-meta and the chat page ([Web]).
type HTTP struct {
	// Listen is the host:port of the plain-HTTP listener; "" disables it.
	Listen string `toml:"listen"`
	// PublicURL is the absolute http(s) URL clients reach the listener by,
	// when it differs from the one derived from the domain and port (behind
	// a reverse proxy, say). Use [Config.PublicURL] for the effective value.
	PublicURL string `toml:"public_url"`
	// TLSListen is the host:port of an HTTPS listener serving the same
	// handlers with the server's certificate; "" disables it.
	TLSListen string `toml:"tls_listen"`
	// AllowedOrigins are the origins (scheme://host[:port]) whose web
	// pages may open the WebSocket (/xmpp-websocket) and use BOSH
	// (/http-bind, by CORS); ["*"] allows any.
	// Empty allows pages from the host the request is sent to or from
	// PublicURL's host only.
	AllowedOrigins []string `toml:"allowed_origins"`
	// TrustedProxies are the addresses (CIDRs or single IPs) of reverse
	// proxies whose X-Forwarded-Proto: https makes a WebSocket or a BOSH
	// session count as encrypted and whose X-Forwarded-For gives the client's address.
	// Empty: loopback addresses only.
	TrustedProxies []string `toml:"trusted_proxies"`
}

// Web is the [web] table: the chat page /chat on the [http] listeners,
// which runs Converse.js against the WebSocket endpoint.
type Web struct {
	// Enabled serves /chat (when an [http] listener exists).
	Enabled bool `toml:"enabled"`
	// ConverseJSPath is a folder where `npm install converse.js` ran (or
	// the converse.js package folder, or its dist folder), whose files
	// /chat/dist/ serves; "" loads Converse.js from its CDN.
	ConverseJSPath string `toml:"conversejs_path"`
}

// BOSH is the [bosh] table: XMPP over BOSH (XEP-0124, XEP-0206) at
// /http-bind on the [http] listeners.
type BOSH struct {
	// Enabled serves /http-bind (when an [http] listener exists).
	Enabled bool `toml:"enabled"`
	// MaxWait is the longest a request is held waiting for something to
	// send; a client asking for longer gets this.
	MaxWait Duration `toml:"max_wait"`
	// MaxInactivity is how long a session may go without a request
	// before its transport is ended (as a dropped TCP connection is).
	MaxInactivity Duration `toml:"max_inactivity"`
	// MaxHold is the most requests held at once; a client asking for more
	// gets this.
	MaxHold int `toml:"max_hold"`
	// MaxPause is the longest inactivity a client may ask for with pause.
	MaxPause Duration `toml:"max_pause"`
	// Polling is the shortest interval allowed between empty requests of
	// a client that asked for hold 0.
	Polling Duration `toml:"polling"`
}

// HTTPUpload is the [httpupload] table: XEP-0363 HTTP file upload. The
// files are sent and fetched through the [http] listeners.
type HTTPUpload struct {
	// Enabled runs the upload service (when an [http] listener exists).
	Enabled bool `toml:"enabled"`
	// Domain is the service's domain; "" means "upload.<server.domain>".
	// Use [Config.UploadDomain] for the effective value.
	Domain string `toml:"domain"`
	// Dir holds the uploaded files; "" means "<data_dir>/uploads". Use
	// [Config.UploadDir] for the effective value.
	Dir string `toml:"dir"`
	// MaxFileSize bounds the size of one file, in bytes.
	MaxFileSize int `toml:"max_file_size"`
	// QuotaBytes bounds the bytes one user holds: files stored plus slots
	// granted and not yet used or expired.
	QuotaBytes int `toml:"quota_bytes"`
	// SlotTimeout is how long a granted slot accepts its upload.
	SlotTimeout Duration `toml:"slot_timeout"`
	// MaxAge is how long a file is kept after its upload.
	MaxAge Duration `toml:"max_age"`
	// SweepInterval is how often old files and expired slots are deleted.
	SweepInterval Duration `toml:"sweep_interval"`
	// AllowRemote lets users of other domains ask for slots.
	AllowRemote bool `toml:"allow_remote"`
}

// TLS is the [tls] table. When both files are empty the server makes a
// self-signed certificate for its domain and keeps it in the data directory.
type TLS struct {
	// CertFile is a PEM file with the certificate chain, leaf first.
	CertFile string `toml:"cert_file"`
	// KeyFile is a PEM file with the private key of CertFile's leaf.
	KeyFile string `toml:"key_file"`
}

// Caps is the [caps] table: how the server learns its clients' entity
// capabilities (XEP-0115), from which PEP knows who wants which events.
type Caps struct {
	// QueryTimeout is how long the server waits for a client's answer to
	// its disco#info query about caps it has not seen.
	QueryTimeout Duration `toml:"query_timeout"`
	// CacheEntries bounds the verified capability sets kept in memory.
	CacheEntries int `toml:"cache_entries"`
}

// Default returns the configuration used when there is no file, and the
// base a file's keys are laid over. It passes [Config.Validate].
func Default() Config {
	return Config{
		Server: Server{
			Domain:          "localhost",
			DataDir:         "./data",
			SoftwareVersion: true,
			Contact: Contact{
				Abuse: []string{}, Admin: []string{}, Feedback: []string{}, Sales: []string{},
				Security: []string{}, Status: []string{}, Support: []string{},
			},
		},
		Log: Log{
			Level:  "info",
			Format: "text",
		},
		Storage: Storage{
			Driver: DriverSQLite,
			DSN:    "",
		},
		C2S: C2S{
			Listen:           ":5222",
			DirectTLSListen:  ":5223",
			RequireSTARTTLS:  true,
			HandshakeTimeout: Duration{30 * time.Second},
			MaxStanzaBytes:   262144,
			MaxDepth:         64,
			SendQueueStanzas: 1000,
			SendQueueBytes:   8388608,
			WriteTimeout:     Duration{30 * time.Second},
			PingInterval:     Duration{4 * time.Minute},
			PingTimeout:      Duration{60 * time.Second},
			ReadRate:         1 << 20,
			ParkAfter:        Duration{30 * time.Second},

			ProxyProtocol:             false,
			ProxyNetworks:             []string{},
			MaxConnections:            50000,
			MaxConnectionsPerAddress:  100,
			ConnectionRatePerAddress:  10,
			ConnectionBurstPerAddress: 50,
			MaxResourcesPerAccount:    10,
			MaxUnackedStanzas:         1000,
			ResumeTimeout:             Duration{5 * time.Minute},
		},
		Auth: Auth{
			SCRAMIterations: 4096,
			LegacySCRAMSHA1: "auto",
			MaxFailures:     5,
			FailureWindow:   Duration{10 * time.Minute},
			Lockout:         Duration{5 * time.Minute},
			FailureDelay:    Duration{1 * time.Second},

			AccountMaxFailures:       20,
			AddressFailuresPerMinute: 30,
			RememberLogins:           Duration{720 * time.Hour},
			TrustedNetworks:          []string{},
		},
		Roster: Roster{
			MaxItems:           1000,
			SharedGroupsReload: Duration{10 * time.Second},
		},
		Offline: Offline{
			MaxMessages:   1000,
			MaxBytes:      10 << 20,
			MaxAge:        Duration{720 * time.Hour},
			SweepInterval: Duration{time.Hour},
		},
		MUC: MUC{
			Enabled:           true,
			Domain:            "",
			MaxRoomsPerUser:   100,
			MaxOccupants:      200,
			HistoryLength:     20,
			MaxHistoryLength:  100,
			MessagesPerSecond: 5,
			MessageBurst:      10,
		},
		MAM: MAM{
			Enabled:            true,
			Default:            "always",
			MaxAge:             Duration{0},
			MaxMessagesPerUser: 0,
			SweepInterval:      Duration{time.Hour},
			FlushInterval:      Duration{500 * time.Millisecond},
			FlushMessages:      5000,
			Rooms:              true,
		},
		PEP: PEP{
			Enabled:            true,
			MaxNodesPerAccount: 1000,
			MaxItemsPerNode:    256,
			MaxPayloadBytes:    250000,
		},
		VCard: VCard{
			MaxBytes: 128 << 10,
		},
		Private: Private{
			MaxBytes: 64 << 10,
			MaxItems: 100,
		},
		Push: Push{
			Enabled:          true,
			MaxRegistrations: 5,
			AckTimeout:       Duration{Duration: 30 * time.Second},
		},
		HTTP: HTTP{
			Listen:         ":5280",
			PublicURL:      "",
			TLSListen:      "",
			AllowedOrigins: []string{},
			TrustedProxies: []string{},
		},
		TLS: TLS{},
		Web: Web{
			Enabled:        true,
			ConverseJSPath: "",
		},
		BOSH: BOSH{
			Enabled:       true,
			MaxWait:       Duration{60 * time.Second},
			MaxInactivity: Duration{60 * time.Second},
			MaxHold:       1,
			MaxPause:      Duration{120 * time.Second},
			Polling:       Duration{5 * time.Second},
		},
		HTTPUpload: HTTPUpload{
			Enabled:       true,
			Domain:        "",
			Dir:           "",
			MaxFileSize:   100 << 20,
			QuotaBytes:    1 << 30,
			SlotTimeout:   Duration{5 * time.Minute},
			MaxAge:        Duration{720 * time.Hour},
			SweepInterval: Duration{time.Hour},
			AllowRemote:   false,
		},
		Caps: Caps{
			QueryTimeout: Duration{30 * time.Second},
			CacheEntries: 4096,
		},
		ExtDisco: ExtDisco{
			CredentialLifetime: Duration{24 * time.Hour},
			Services:           []ExternalService{},
		},
		Component: Component{
			SendQueueBytes: 16 << 20,
			Services:       []ComponentService{},
		},
		S2S: defaultS2S(),
	}
}

// StorageDSN returns the data source name to open: Storage.DSN, or for
// sqlite with no DSN, xmppd.db in the data directory.
func (c *Config) StorageDSN() string {
	if c.Storage.DSN == "" && c.Storage.Driver == DriverSQLite {
		return filepath.Join(c.Server.DataDir, "xmppd.db")
	}
	return c.Storage.DSN
}

// PublicURL returns the URL clients reach the HTTP listeners by, without a
// trailing slash: HTTP.PublicURL when set, otherwise
// "https://<domain>:<port>" with the port of HTTP.TLSListen when that is
// set, else "http://<domain>:<port>" with the port of HTTP.Listen. It
// returns "" when both listeners are disabled.
func (c *Config) PublicURL() string {
	if c.HTTP.Listen == "" && c.HTTP.TLSListen == "" {
		return ""
	}
	if c.HTTP.PublicURL != "" {
		return strings.TrimRight(c.HTTP.PublicURL, "/")
	}
	scheme, addr := "http", c.HTTP.Listen
	if c.HTTP.TLSListen != "" {
		scheme, addr = "https", c.HTTP.TLSListen
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "" // refused by Validate
	}
	return scheme + "://" + c.Server.Domain + ":" + port
}

// Validate checks every value and the rules between them, and returns all
// the problems it finds joined with errors.Join, each an [*Error] naming its
// key. [Load] and [Parse] call it; call it yourself after changing a Config
// in code. When Server.Domain is valid, Validate also rewrites it to its
// normalised form (RFC 7622 §3.2: lower case, Unicode labels).
//
// Validate opens the TLS files to check that they are readable.
func (c *Config) Validate() error {
	errs := c.check()
	if len(errs) == 0 {
		return nil
	}
	return joinErrors(errs)
}

// check runs every section's validation and returns the problems found.
func (c *Config) check() []*Error {
	var p problems
	c.Server.validate(&p)
	c.Log.validate(&p)
	c.Storage.validate(&p)
	c.C2S.validate(&p)
	c.Auth.validate(&p)
	c.Roster.validate(&p)
	c.Offline.validate(&p)
	c.MUC.validate(&p, c.Server.Domain)
	c.MAM.validate(&p)
	c.PEP.validate(&p)
	c.VCard.validate(&p)
	c.Private.validate(&p)
	c.Push.validate(&p)
	c.HTTP.validate(&p)
	c.TLS.validate(&p)
	c.Web.validate(&p)
	c.BOSH.validate(&p)
	c.HTTPUpload.validate(&p, c.Server.Domain, c.MUCDomain())
	c.Caps.validate(&p)
	c.Server.Contact.validate(&p)
	c.ExtDisco.validate(&p)
	c.Component.validate(&p, c.C2S.MaxStanzaBytes, c.Server.Domain, c.MUCDomain(), c.UploadDomain())
	c.S2S.validate(&p)
	p.checkDistinctAddrs([][2]string{
		{"c2s.listen", c.C2S.Listen},
		{"c2s.direct_tls_listen", c.C2S.DirectTLSListen},
		{"http.listen", c.HTTP.Listen},
		{"http.tls_listen", c.HTTP.TLSListen},
		{"component.listen", c.Component.Listen},
		{"s2s.listen", c.S2S.Listen},
		{"s2s.direct_tls_listen", c.S2S.DirectTLSListen},
	})
	return p
}

func (s *Server) validate(p *problems) {
	if d, msg := normaliseDomain(s.Domain); msg != "" {
		p.add("server.domain", "%s", msg)
	} else {
		s.Domain = d
	}
	if s.DataDir == "" {
		p.add("server.data_dir", `must not be empty (want a directory such as "/var/lib/xmppd")`)
	}
}

func (l *Log) validate(p *problems) {
	p.oneOf("log.level", l.Level, "debug", "info", "warn", "error")
	p.oneOf("log.format", l.Format, "text", "json")
}

func (s *Storage) validate(p *problems) {
	p.oneOf("storage.driver", s.Driver, DriverSQLite, DriverPostgres)
	if s.Driver != DriverPostgres {
		return
	}
	switch {
	case s.DSN == "":
		p.add("storage.dsn", `required when storage.driver = "postgres" `+
			`(want a URL such as "postgres://xmppd@localhost/xmppd" or key=value pairs such as "host=localhost dbname=xmppd")`)
	case !validPostgresDSN(s.DSN):
		// Do not quote the DSN: it may hold a password.
		p.add("storage.dsn", `not a libpq connection string `+
			`(want a URL such as "postgres://xmppd@localhost/xmppd" or key=value pairs such as "host=localhost dbname=xmppd")`)
	}
}

func (s *C2S) validate(p *problems) {
	if s.Listen == "" {
		p.add("c2s.listen", `must not be empty (want host:port such as ":5222")`)
	} else {
		p.addr("c2s.listen", s.Listen)
	}
	if s.DirectTLSListen != "" {
		p.addr("c2s.direct_tls_listen", s.DirectTLSListen)
	}
	p.positive("c2s.handshake_timeout", s.HandshakeTimeout)
	p.atLeast("c2s.max_stanza_bytes", s.MaxStanzaBytes, 10000, "the least RFC 6120 §13.12 allows a server to set")
	p.atLeast("c2s.max_depth", s.MaxDepth, 8, "")
	p.atLeast("c2s.send_queue_stanzas", s.SendQueueStanzas, 1, "")
	if s.MaxStanzaBytes >= 10000 && s.SendQueueBytes < s.MaxStanzaBytes {
		p.add("c2s.send_queue_bytes", "%d is less than c2s.max_stanza_bytes (%d), so a stanza of the largest size "+
			"could never be queued (want at least %[2]d)", s.SendQueueBytes, s.MaxStanzaBytes)
	}
	p.positive("c2s.write_timeout", s.WriteTimeout)
	p.notNegative("c2s.ping_interval", s.PingInterval, "0s disables pings")
	p.positive("c2s.ping_timeout", s.PingTimeout)
	p.atLeast("c2s.read_rate", s.ReadRate, 0, "0 disables the limit")
	p.notNegative("c2s.park_after", s.ParkAfter, "0s keeps idle sessions' goroutines")
	p.cidrs("c2s.proxy_networks", s.ProxyNetworks)
	if s.ProxyProtocol && len(s.ProxyNetworks) == 0 {
		p.add("c2s.proxy_networks", `must list the proxies' networks when c2s.proxy_protocol is true (want CIDRs such as ["10.0.0.0/8"])`)
	}
	p.between("c2s.max_connections", s.MaxConnections, 0, 10_000_000, "0 sets no bound")
	p.between("c2s.max_connections_per_address", s.MaxConnectionsPerAddress, 0, 10_000_000, "0 sets no bound")
	if s.MaxConnections > 0 && s.MaxConnectionsPerAddress > s.MaxConnections {
		p.add("c2s.max_connections_per_address", "%d is more than c2s.max_connections (%d)", s.MaxConnectionsPerAddress, s.MaxConnections)
	}
	p.between("c2s.connection_rate_per_address", s.ConnectionRatePerAddress, 0, 1_000_000, "0 sets no limit")
	if s.ConnectionRatePerAddress > 0 {
		p.between("c2s.connection_burst_per_address", s.ConnectionBurstPerAddress, 1, 1_000_000, "")
	}
	p.between("c2s.max_resources_per_account", s.MaxResourcesPerAccount, 0, 100_000, "0 sets no bound")
	p.between("c2s.max_unacked_stanzas", s.MaxUnackedStanzas, 1, 1_000_000, "")
	p.notNegative("c2s.resume_timeout", s.ResumeTimeout, "0s offers no resumption")
	if s.ResumeTimeout.Duration > 24*time.Hour {
		p.add("c2s.resume_timeout", "%q is too long (want at most \"24h\"; a session waiting that long holds its messages from offline storage)", s.ResumeTimeout.String())
	}
}

func (a *Auth) validate(p *problems) {
	p.atLeast("auth.scram_iterations", a.SCRAMIterations, 4096, "the least RFC 7677 recommends")
	p.oneOf("auth.legacy_scram_sha1", a.LegacySCRAMSHA1, "auto", "off")
	p.between("auth.max_failures", a.MaxFailures, 0, 1000, "0 turns throttling off")
	p.positive("auth.failure_window", a.FailureWindow)
	p.positive("auth.lockout", a.Lockout)
	p.notNegative("auth.failure_delay", a.FailureDelay, "0s adds no delay")
	if a.FailureDelay.Duration > time.Minute {
		p.add("auth.failure_delay", "%q is too long (want at most \"1m\"; it is multiplied by up to 5, and a client waiting that long gives up)", a.FailureDelay.String())
	}
	p.between("auth.account_max_failures", a.AccountMaxFailures, 0, 1_000_000, "0 sets no limit")
	if a.AccountMaxFailures > 0 && a.AccountMaxFailures < a.MaxFailures {
		p.add("auth.account_max_failures", "%d is less than auth.max_failures (%d), so one address would lock the account for everyone "+
			"before it is refused itself (want at least %[2]d, or 0)", a.AccountMaxFailures, a.MaxFailures)
	}
	p.between("auth.address_failures_per_minute", a.AddressFailuresPerMinute, 0, 1_000_000, "0 sets no limit")
	p.notNegative("auth.remember_logins", a.RememberLogins, "0s remembers none")
	p.cidrs("auth.trusted_networks", a.TrustedNetworks)
}

func (r *Roster) validate(p *problems) {
	p.atLeast("roster.max_items", r.MaxItems, 1, "")
	p.positive("roster.shared_groups_reload", r.SharedGroupsReload)
}

func (o *Offline) validate(p *problems) {
	p.atLeast("offline.max_messages", o.MaxMessages, 0, "0 turns offline storage off")
	p.atLeast("offline.max_bytes", o.MaxBytes, 0, "0 sets no bound in bytes")
	p.positive("offline.max_age", o.MaxAge)
	p.positive("offline.sweep_interval", o.SweepInterval)
}

func (m *MAM) validate(p *problems) {
	p.oneOf("mam.default", m.Default, "always", "roster", "never")
	p.notNegative("mam.max_age", m.MaxAge, "0 keeps messages until deleted")
	p.atLeast("mam.max_messages_per_user", m.MaxMessagesPerUser, 0, "0 sets no bound")
	p.positive("mam.sweep_interval", m.SweepInterval)
	p.positive("mam.flush_interval", m.FlushInterval)
	if m.FlushInterval.Duration > time.Minute {
		p.add("mam.flush_interval", "%s is more than 1m: a crash would lose that much of the archive", m.FlushInterval.String())
	}
	p.between("mam.flush_messages", m.FlushMessages, 1, 10000, "")
}

func (e *PEP) validate(p *problems) {
	p.atLeast("pep.max_nodes_per_account", e.MaxNodesPerAccount, 0, "0 sets no bound")
	p.between("pep.max_items_per_node", e.MaxItemsPerNode, 1, 1_000_000, "")
	p.between("pep.max_payload_bytes", e.MaxPayloadBytes, 1024, 16<<20, "")
}

func (v *VCard) validate(p *problems) {
	p.between("vcard.max_bytes", v.MaxBytes, 1024, 16<<20, "")
}

func (pu *Push) validate(p *problems) {
	p.between("push.max_registrations", pu.MaxRegistrations, 1, 100, "")
	p.notNegative("push.ack_timeout", pu.AckTimeout, `"0s" never notifies a connected client`)
}

func (pr *Private) validate(p *problems) {
	p.between("private.max_bytes", pr.MaxBytes, 1024, 16<<20, "")
	p.between("private.max_items", pr.MaxItems, 1, 100000, "")
}

// validate checks the [muc] table; serverDomain is the normalised
// server.domain, which the service's domain must differ from.
func (m *MUC) validate(p *problems, serverDomain string) {
	if m.Domain != "" {
		if d, msg := normaliseDomain(m.Domain); msg != "" {
			p.add("muc.domain", "%s", msg)
		} else if d == serverDomain {
			p.add("muc.domain", "%q is server.domain; the service needs a domain of its own (want one such as %q, or \"\")",
				m.Domain, "conference."+serverDomain)
		} else {
			m.Domain = d
		}
	}
	p.atLeast("muc.max_rooms_per_user", m.MaxRoomsPerUser, 1, "")
	p.atLeast("muc.max_occupants", m.MaxOccupants, 1, "")
	p.atLeast("muc.max_history_length", m.MaxHistoryLength, 0, "")
	p.atLeast("muc.history_length", m.HistoryLength, 0, "0 keeps no history")
	if m.HistoryLength > m.MaxHistoryLength && m.MaxHistoryLength >= 0 {
		p.add("muc.history_length", "%d is more than muc.max_history_length (%d)", m.HistoryLength, m.MaxHistoryLength)
	}
	p.atLeast("muc.messages_per_second", m.MessagesPerSecond, 0, "0 sets no limit")
	if m.MessagesPerSecond > 0 {
		p.atLeast("muc.message_burst", m.MessageBurst, 1, "")
	}
}

// MUCDomain returns the multi-user chat service's domain: MUC.Domain, or
// "conference.<server.domain>" when it is empty.
func (c *Config) MUCDomain() string {
	if c.MUC.Domain != "" {
		return c.MUC.Domain
	}
	return "conference." + c.Server.Domain
}

func (h *HTTP) validate(p *problems) {
	if h.Listen != "" {
		p.addr("http.listen", h.Listen)
	}
	if h.PublicURL != "" {
		if msg := checkPublicURL(h.PublicURL); msg != "" {
			p.add("http.public_url", "%s", msg)
		}
	}
	if h.TLSListen != "" {
		p.addr("http.tls_listen", h.TLSListen)
	}
	for _, o := range h.AllowedOrigins {
		if msg := checkOrigin(o); msg != "" {
			p.add("http.allowed_origins", "%s", msg)
		}
	}
	p.cidrs("http.trusted_proxies", h.TrustedProxies)
}

func (b *BOSH) validate(p *problems) {
	p.positive("bosh.max_wait", b.MaxWait)
	p.positive("bosh.max_inactivity", b.MaxInactivity)
	p.between("bosh.max_hold", b.MaxHold, 0, 10, "0 answers every request at once: polling")
	p.positive("bosh.max_pause", b.MaxPause)
	p.notNegative("bosh.polling", b.Polling, "no limit")
}

// validate checks the [httpupload] table; serverDomain and mucDomain are
// the normalised domains the service's must differ from.
func (u *HTTPUpload) validate(p *problems, serverDomain, mucDomain string) {
	if u.Domain != "" {
		if d, msg := normaliseDomain(u.Domain); msg != "" {
			p.add("httpupload.domain", "%s", msg)
		} else if d == serverDomain || d == mucDomain {
			p.add("httpupload.domain", "%q is already served (server.domain or the muc domain); the service needs a domain of its own (want one such as %q, or \"\")",
				u.Domain, "upload."+serverDomain)
		} else {
			u.Domain = d
		}
	}
	p.atLeast("httpupload.max_file_size", u.MaxFileSize, 1, "")
	if u.MaxFileSize >= 1 && u.QuotaBytes < u.MaxFileSize {
		p.add("httpupload.quota_bytes", "%d is less than httpupload.max_file_size (%d), so a file of the largest size "+
			"could never be uploaded (want at least %[2]d)", u.QuotaBytes, u.MaxFileSize)
	}
	p.positive("httpupload.slot_timeout", u.SlotTimeout)
	p.positive("httpupload.max_age", u.MaxAge)
	p.positive("httpupload.sweep_interval", u.SweepInterval)
}

// UploadDomain returns the HTTP upload service's domain: HTTPUpload.Domain,
// or "upload.<server.domain>" when it is empty.
func (c *Config) UploadDomain() string {
	if c.HTTPUpload.Domain != "" {
		return c.HTTPUpload.Domain
	}
	return "upload." + c.Server.Domain
}

// UploadDir returns the directory of uploaded files: HTTPUpload.Dir, or
// "uploads" in the data directory when it is empty.
func (c *Config) UploadDir() string {
	if c.HTTPUpload.Dir != "" {
		return c.HTTPUpload.Dir
	}
	return filepath.Join(c.Server.DataDir, "uploads")
}

func (t *TLS) validate(p *problems) {
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		p.add("tls.key_file", "must be set when tls.cert_file is set (set both, or neither for a self-signed certificate)")
	case t.CertFile == "" && t.KeyFile != "":
		p.add("tls.cert_file", "must be set when tls.key_file is set (set both, or neither for a self-signed certificate)")
	}
	if t.CertFile != "" {
		p.readable("tls.cert_file", t.CertFile)
	}
	if t.KeyFile != "" {
		p.readable("tls.key_file", t.KeyFile)
	}
}

// converseJSLayouts are the places under web.conversejs_path where
// converse.min.js may be (webchat.DistDir looks in the same order).
var converseJSLayouts = []string{"node_modules/converse.js/dist", "dist", "."}

func (w *Web) validate(p *problems) {
	if !w.Enabled || w.ConverseJSPath == "" {
		return
	}
	for _, l := range converseJSLayouts {
		if fi, err := os.Stat(filepath.Join(w.ConverseJSPath, filepath.FromSlash(l), "converse.min.js")); err == nil && fi.Mode().IsRegular() {
			return
		}
	}
	p.add("web.conversejs_path", "%q holds no Converse.js (want a folder where `npm install converse.js` ran, "+
		"with node_modules/converse.js/dist/converse.min.js, or a converse.js dist folder; or \"\" to load it from its CDN)", w.ConverseJSPath)
}

// joinErrors joins errs with errors.Join, so that each prints on its own line.
func joinErrors(errs []*Error) error {
	all := make([]error, len(errs))
	for i, e := range errs {
		all[i] = e
	}
	return errors.Join(all...)
}

func (c *Caps) validate(p *problems) {
	p.positive("caps.query_timeout", c.QueryTimeout)
	p.between("caps.cache_entries", c.CacheEntries, 1, 1000000, "")
}
