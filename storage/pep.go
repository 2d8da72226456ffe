package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// PEPNode is a node of an account's PEP service (XEP-0163) and its
// configuration. storage keeps the values as given; their meaning is
// package pep's.
type PEPNode struct {
	Node          string
	AccessModel   string   // "open", "presence", "roster" or "whitelist"
	RosterGroups  []string // pubsub#roster_groups_allowed
	MaxItems      int      // items kept; -1 for the server's maximum
	PersistItems  bool
	SendLast      string // pubsub#send_last_published_item
	NotifyRetract bool
	NotifyDelete  bool
	Title         string
}

// PEPItem is an item of a PEP node.
type PEPItem struct {
	Node      string
	ID        string
	Publisher string // bare JID
	Payload   []byte // one serialised element
}

// PEPLast is a node of some account that has items, with the sequence
// number of its newest item (see [PEP.Last]).
type PEPLast struct {
	Owner  string
	Node   PEPNode
	ItemID string
	Seq    int64
}

// PEP is the repository of PEP nodes and items.
type PEP struct {
	db *DB // immutable; never nil
}

// PEP returns the PEP repository.
func (db *DB) PEP() *PEP { return &PEP{db: db} }

const pepNodeColumns = `node, access_model, roster_groups, max_items, persist_items, send_last, notify_retract, notify_delete, title`

func scanPEPNode(sc interface{ Scan(...any) error }, extra ...any) (PEPNode, error) {
	var n PEPNode
	var groups string
	args := append([]any{&n.Node, &n.AccessModel, &groups, &n.MaxItems, &n.PersistItems, &n.SendLast,
		&n.NotifyRetract, &n.NotifyDelete, &n.Title}, extra...)
	if err := sc.Scan(args...); err != nil {
		return PEPNode{}, err
	}
	if groups != "" {
		n.RosterGroups = strings.Split(groups, "\n")
	}
	return n, nil
}

func pepNodeArgs(owner string, n PEPNode) []any {
	return []any{owner, n.Node, n.AccessModel, strings.Join(n.RosterGroups, "\n"), n.MaxItems, n.PersistItems,
		n.SendLast, n.NotifyRetract, n.NotifyDelete, n.Title}
}

// Nodes returns owner's nodes, sorted by name.
func (p *PEP) Nodes(ctx context.Context, owner string) ([]PEPNode, error) {
	rows, err := p.db.sql.QueryContext(ctx, `SELECT `+pepNodeColumns+` FROM pep_nodes WHERE owner = $1`, owner)
	if err != nil {
		return nil, fmt.Errorf("storage: pep nodes of %s: %w", owner, err)
	}
	defer rows.Close()
	var out []PEPNode
	for rows.Next() {
		n, err := scanPEPNode(rows)
		if err != nil {
			return nil, fmt.Errorf("storage: pep nodes of %s: %w", owner, err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: pep nodes of %s: %w", owner, err)
	}
	// Sorted in Go: the engines' collations differ.
	slices.SortFunc(out, func(a, b PEPNode) int { return strings.Compare(a.Node, b.Node) })
	return out, nil
}

// Node returns one node of owner; ok is false when it does not exist.
func (p *PEP) Node(ctx context.Context, owner, node string) (n PEPNode, ok bool, err error) {
	row := p.db.sql.QueryRowContext(ctx, `SELECT `+pepNodeColumns+` FROM pep_nodes WHERE owner = $1 AND node = $2`, owner, node)
	n, err = scanPEPNode(row)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return PEPNode{}, false, nil
	case err != nil:
		return PEPNode{}, false, fmt.Errorf("storage: pep node %s %s: %w", owner, node, err)
	}
	return n, true, nil
}

// CreateNode adds a node to owner's service. It fails with ErrExists when
// the node exists, and with ErrLimit when owner has maxNodes nodes
// already (maxNodes ≤ 0: no limit). The count and the insert are one
// transaction; callers serialise the writes of one owner.
func (p *PEP) CreateNode(ctx context.Context, owner string, n PEPNode, maxNodes int) (err error) {
	what := "create pep node " + owner + " " + n.Node
	tx, err := p.db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storage: %s: %w", what, err)
	}
	defer func() {
		if err != nil {
			rollback(tx)
		}
	}()
	if maxNodes > 0 {
		var count int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM pep_nodes WHERE owner = $1`, owner).Scan(&count); err != nil {
			return fmt.Errorf("storage: %s: %w", what, err)
		}
		if count >= maxNodes {
			return fmt.Errorf("storage: %s: %d nodes: %w", what, count, ErrLimit)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO pep_nodes (owner, `+pepNodeColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, pepNodeArgs(owner, n)...); err != nil {
		if p.db.dialect.isUniqueViolation(err) {
			return fmt.Errorf("storage: %s: %w", what, ErrExists)
		}
		return fmt.Errorf("storage: %s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storage: %s: commit: %w", what, err)
	}
	return nil
}

// ConfigureNode replaces the configuration of an existing node (ErrNotFound
// otherwise) and keeps only its keep newest items (keep ≤ 0: none), in
// one transaction.
func (p *PEP) ConfigureNode(ctx context.Context, owner string, n PEPNode, keep int) (err error) {
	what := "configure pep node " + owner + " " + n.Node
	tx, err := p.db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storage: %s: %w", what, err)
	}
	defer func() {
		if err != nil {
			rollback(tx)
		}
	}()
	res, err := tx.ExecContext(ctx, `UPDATE pep_nodes SET access_model = $3, roster_groups = $4, max_items = $5,
		persist_items = $6, send_last = $7, notify_retract = $8, notify_delete = $9, title = $10
		WHERE owner = $1 AND node = $2`, pepNodeArgs(owner, n)...)
	if err != nil {
		return fmt.Errorf("storage: %s: %w", what, err)
	}
	if k, err := res.RowsAffected(); err != nil || k == 0 {
		if err == nil {
			err = ErrNotFound
		}
		return fmt.Errorf("storage: %s: %w", what, err)
	}
	if err := trimPEPItems(ctx, tx, owner, n.Node, keep); err != nil {
		return fmt.Errorf("storage: %s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storage: %s: commit: %w", what, err)
	}
	return nil
}

// trimPEPItems deletes all but the keep newest items of a node.
func trimPEPItems(ctx context.Context, tx *sql.Tx, owner, node string, keep int) error {
	if keep <= 0 {
		_, err := tx.ExecContext(ctx, `DELETE FROM pep_items WHERE owner = $1 AND node = $2`, owner, node)
		return err
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM pep_items WHERE owner = $1 AND node = $2 AND seq NOT IN
		(SELECT seq FROM pep_items WHERE owner = $1 AND node = $2 ORDER BY seq DESC LIMIT $3)`, owner, node, keep)
	return err
}

// DeleteNode deletes a node and its items; ok is false when it did not
// exist.
func (p *PEP) DeleteNode(ctx context.Context, owner, node string) (ok bool, err error) {
	res, err := p.db.sql.ExecContext(ctx, `DELETE FROM pep_nodes WHERE owner = $1 AND node = $2`, owner, node)
	if err != nil {
		return false, fmt.Errorf("storage: delete pep node %s %s: %w", owner, node, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("storage: delete pep node %s %s: %w", owner, node, err)
	}
	return n > 0, nil
}

// Publish stores an item of an existing node as its newest, replacing an
// item of the same id, and keeps only the node's keep newest items
// (keep ≥ 1), in one transaction.
func (p *PEP) Publish(ctx context.Context, owner string, it PEPItem, keep int) (err error) {
	what := "publish pep item " + owner + " " + it.Node + " " + it.ID
	tx, err := p.db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storage: %s: %w", what, err)
	}
	defer func() {
		if err != nil {
			rollback(tx)
		}
	}()
	if _, err := tx.ExecContext(ctx, `DELETE FROM pep_items WHERE owner = $1 AND node = $2 AND id = $3`, owner, it.Node, it.ID); err != nil {
		return fmt.Errorf("storage: %s: %w", what, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO pep_items (owner, node, id, publisher, payload) VALUES ($1, $2, $3, $4, $5)`,
		owner, it.Node, it.ID, it.Publisher, string(it.Payload)); err != nil {
		return fmt.Errorf("storage: %s: %w", what, err)
	}
	if err := trimPEPItems(ctx, tx, owner, it.Node, max(keep, 1)); err != nil {
		return fmt.Errorf("storage: %s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storage: %s: commit: %w", what, err)
	}
	return nil
}

// Items returns items of a node, oldest first: those named by ids (all
// when ids is empty), and of them only the last newest when last > 0.
// A node that does not exist has none.
func (p *PEP) Items(ctx context.Context, owner, node string, ids []string, last int) ([]PEPItem, error) {
	var q strings.Builder
	q.WriteString(`SELECT id, publisher, payload FROM pep_items WHERE owner = $1 AND node = $2`)
	args := []any{owner, node}
	if len(ids) > 0 {
		q.WriteString(` AND id IN (`)
		for i, id := range ids {
			if i > 0 {
				q.WriteString(", ")
			}
			args = append(args, id)
			q.WriteString("$" + strconv.Itoa(len(args)))
		}
		q.WriteString(")")
	}
	q.WriteString(` ORDER BY seq DESC`)
	if last > 0 {
		args = append(args, last)
		q.WriteString(" LIMIT $" + strconv.Itoa(len(args)))
	}
	rows, err := p.db.sql.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("storage: pep items %s %s: %w", owner, node, err)
	}
	defer rows.Close()
	var out []PEPItem
	for rows.Next() {
		it := PEPItem{Node: node}
		var payload string
		if err := rows.Scan(&it.ID, &it.Publisher, &payload); err != nil {
			return nil, fmt.Errorf("storage: pep items %s %s: %w", owner, node, err)
		}
		it.Payload = []byte(payload)
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: pep items %s %s: %w", owner, node, err)
	}
	slices.Reverse(out)
	return out, nil
}

// Retract deletes an item; ok is false when it did not exist.
func (p *PEP) Retract(ctx context.Context, owner, node, id string) (ok bool, err error) {
	res, err := p.db.sql.ExecContext(ctx, `DELETE FROM pep_items WHERE owner = $1 AND node = $2 AND id = $3`, owner, node, id)
	if err != nil {
		return false, fmt.Errorf("storage: retract pep item %s %s %s: %w", owner, node, id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("storage: retract pep item %s %s %s: %w", owner, node, id, err)
	}
	return n > 0, nil
}

// Purge deletes every item of a node.
func (p *PEP) Purge(ctx context.Context, owner, node string) error {
	if _, err := p.db.sql.ExecContext(ctx, `DELETE FROM pep_items WHERE owner = $1 AND node = $2`, owner, node); err != nil {
		return fmt.Errorf("storage: purge pep node %s %s: %w", owner, node, err)
	}
	return nil
}

// maxPEPOwners bounds the owners one Last query names.
const maxPEPOwners = 200

// Last returns the nodes of owners that have items, each with the id and
// sequence number of its newest item, without payloads (a login asks for
// every contact's, and wants the payloads of a few: [PEP.Payloads]).
func (p *PEP) Last(ctx context.Context, owners []string) ([]PEPLast, error) {
	var out []PEPLast
	for len(owners) > 0 {
		chunk := owners[:min(len(owners), maxPEPOwners)]
		owners = owners[len(chunk):]
		var q strings.Builder
		q.WriteString(`SELECT n.owner, i.id, i.seq, n.` + strings.ReplaceAll(pepNodeColumns, ", ", ", n.") + `
			FROM pep_nodes n JOIN pep_items i ON i.owner = n.owner AND i.node = n.node
			WHERE i.seq = (SELECT MAX(m.seq) FROM pep_items m WHERE m.owner = n.owner AND m.node = n.node)
			AND n.owner IN (`)
		args := appendInList(&q, chunk)
		rows, err := p.db.sql.QueryContext(ctx, q.String(), args...)
		if err != nil {
			return nil, fmt.Errorf("storage: last pep items: %w", err)
		}
		for rows.Next() {
			var l PEPLast
			var groups string
			n := &l.Node
			if err := rows.Scan(&l.Owner, &l.ItemID, &l.Seq, &n.Node, &n.AccessModel, &groups, &n.MaxItems, &n.PersistItems,
				&n.SendLast, &n.NotifyRetract, &n.NotifyDelete, &n.Title); err != nil {
				rows.Close()
				return nil, fmt.Errorf("storage: last pep items: %w", err)
			}
			if groups != "" {
				n.RosterGroups = strings.Split(groups, "\n")
			}
			out = append(out, l)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("storage: last pep items: %w", err)
		}
	}
	return out, nil
}

// appendInList writes "$1, $2, …)" for values into q, closing the IN
// list the caller opened, and returns them as the query's arguments.
func appendInList[T any](q *strings.Builder, values []T) []any {
	args := make([]any, len(values))
	for i, v := range values {
		if i > 0 {
			q.WriteString(", ")
		}
		args[i] = v
		q.WriteString("$" + strconv.Itoa(i+1))
	}
	q.WriteString(")")
	return args
}

// Payloads returns the payloads of the items with the given sequence
// numbers (from [PEP.Last]); an item deleted meanwhile is missing.
func (p *PEP) Payloads(ctx context.Context, seqs []int64) (map[int64][]byte, error) {
	out := make(map[int64][]byte, len(seqs))
	for len(seqs) > 0 {
		chunk := seqs[:min(len(seqs), maxPEPOwners)]
		seqs = seqs[len(chunk):]
		var q strings.Builder
		q.WriteString(`SELECT seq, payload FROM pep_items WHERE seq IN (`)
		args := appendInList(&q, chunk)
		rows, err := p.db.sql.QueryContext(ctx, q.String(), args...)
		if err != nil {
			return nil, fmt.Errorf("storage: pep payloads: %w", err)
		}
		for rows.Next() {
			var seq int64
			var payload string
			if err := rows.Scan(&seq, &payload); err != nil {
				rows.Close()
				return nil, fmt.Errorf("storage: pep payloads: %w", err)
			}
			out[seq] = []byte(payload)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("storage: pep payloads: %w", err)
		}
	}
	return out, nil
}
