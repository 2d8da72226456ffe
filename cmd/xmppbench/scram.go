package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// scramKeys are the keys derived from a password, a salt and an iteration
// count (RFC 5802 §3).
type scramKeys struct {
	clientKey []byte
	storedKey []byte
	serverKey []byte
}

// scramCache remembers derived keys by (mechanism, salt, iterations). All
// accounts share one password, so a salt seen once (in the untimed prime
// pass) saves the PBKDF2 work of a later login: the generator then spends
// its CPU on what a server's login costs it, not on what a client's costs.
type scramCache struct {
	mu      sync.Mutex
	keys    map[string]scramKeys // guarded by mu
	derived atomic.Int64         // PBKDF2 derivations done
}

func newSCRAMCache() *scramCache { return &scramCache{keys: map[string]scramKeys{}} }

// scramMech is one SCRAM hash (RFC 5802, RFC 7677).
type scramMech struct {
	name string
	h    func() hash.Hash
}

var scramMechs = map[string]scramMech{
	"SCRAM-SHA-1":   {"SCRAM-SHA-1", sha1.New},
	"SCRAM-SHA-256": {"SCRAM-SHA-256", sha256.New},
}

func (c *scramCache) get(m scramMech, password string, salt []byte, iter int) (scramKeys, error) {
	key := m.name + "\x00" + strconv.Itoa(iter) + "\x00" + string(salt)
	if c != nil {
		c.mu.Lock()
		k, ok := c.keys[key]
		c.mu.Unlock()
		if ok {
			return k, nil
		}
	}
	salted, err := pbkdf2.Key(m.h, password, salt, iter, m.h().Size())
	if err != nil {
		return scramKeys{}, err
	}
	k := scramKeys{clientKey: hmacSum(m.h, salted, "Client Key"), serverKey: hmacSum(m.h, salted, "Server Key")}
	h := m.h()
	h.Write(k.clientKey)
	k.storedKey = h.Sum(nil)
	if c != nil {
		c.derived.Add(1)
		c.mu.Lock()
		c.keys[key] = k
		c.mu.Unlock()
	}
	return k, nil
}

func hmacSum(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// scramClient is the client side of one SCRAM exchange without channel
// binding (gs2 header "n,,").
type scramClient struct {
	mech      scramMech
	user      string
	password  string
	cache     *scramCache
	nonce     string
	firstBare string
	authMsg   string
	keys      scramKeys
}

func newSCRAMClient(mech scramMech, user, password string, cache *scramCache) *scramClient {
	b := make([]byte, 18)
	rand.Read(b)
	return &scramClient{mech: mech, user: user, password: password, cache: cache, nonce: base64.RawStdEncoding.EncodeToString(b)}
}

// first returns the client-first-message.
func (c *scramClient) first() string {
	u := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(c.user)
	c.firstBare = "n=" + u + ",r=" + c.nonce
	return "n,," + c.firstBare
}

// parseServerFirst returns the nonce, salt and iteration count of a
// server-first-message.
func parseServerFirst(msg string) (nonce string, salt []byte, iter int, err error) {
	for _, f := range strings.Split(msg, ",") {
		if len(f) < 2 || f[1] != '=' {
			return "", nil, 0, fmt.Errorf("scram: malformed server-first %q", msg)
		}
		switch f[0] {
		case 'r':
			nonce = f[2:]
		case 's':
			if salt, err = base64.StdEncoding.DecodeString(f[2:]); err != nil {
				return "", nil, 0, fmt.Errorf("scram: salt: %w", err)
			}
		case 'i':
			if iter, err = strconv.Atoi(f[2:]); err != nil || iter < 1 {
				return "", nil, 0, fmt.Errorf("scram: iteration count %q", f[2:])
			}
		case 'm':
			return "", nil, 0, errors.New("scram: mandatory extension not supported")
		}
	}
	if nonce == "" || salt == nil || iter == 0 {
		return "", nil, 0, fmt.Errorf("scram: incomplete server-first %q", msg)
	}
	return nonce, salt, iter, nil
}

// final answers the server-first-message with the client-final-message.
func (c *scramClient) final(serverFirst string) (string, error) {
	nonce, salt, iter, err := parseServerFirst(serverFirst)
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(nonce, c.nonce) || len(nonce) == len(c.nonce) {
		return "", errors.New("scram: server nonce does not extend ours")
	}
	c.keys, err = c.cache.get(c.mech, c.password, salt, iter)
	if err != nil {
		return "", err
	}
	withoutProof := "c=biws,r=" + nonce
	c.authMsg = c.firstBare + "," + serverFirst + "," + withoutProof
	sig := hmacSum(c.mech.h, c.keys.storedKey, c.authMsg)
	proof := make([]byte, len(sig))
	subtle.XORBytes(proof, c.keys.clientKey, sig)
	return withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof), nil
}

// verify checks the server-final-message (v=…).
func (c *scramClient) verify(serverFinal string) error {
	if e, ok := strings.CutPrefix(serverFinal, "e="); ok {
		return fmt.Errorf("scram: server error %s", e)
	}
	v, ok := strings.CutPrefix(serverFinal, "v=")
	if !ok {
		return fmt.Errorf("scram: malformed server-final %q", serverFinal)
	}
	got, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return fmt.Errorf("scram: server signature: %w", err)
	}
	if !bytes.Equal(got, hmacSum(c.mech.h, c.keys.serverKey, c.authMsg)) {
		return errors.New("scram: wrong server signature")
	}
	return nil
}
