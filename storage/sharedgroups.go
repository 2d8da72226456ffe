package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// SharedGroup is a shared roster group: its members appear in the rosters
// of the users it is shown to, under DisplayName, with a mutual
// subscription.
type SharedGroup struct {
	Name        string
	DisplayName string
	Description string
	// ShowTo is "everybody", "members" (the group's own members),
	// "groups" (its members and those of ShowToGroups) or "nobody" (a
	// group kept for its members only, who see the groups shown to it).
	ShowTo       string
	ShowToGroups []string
	Members      []string // bare JIDs of accounts, sorted
}

// SharedGroups is the repository of shared roster groups.
type SharedGroups struct {
	db *DB // immutable; never nil
}

// SharedGroups returns the shared roster groups repository.
func (db *DB) SharedGroups() *SharedGroups { return &SharedGroups{db: db} }

// Version returns a number that changes whenever a group, or the
// membership of any, changes.
func (g *SharedGroups) Version(ctx context.Context) (int64, error) {
	var v int64
	if err := g.db.sql.QueryRowContext(ctx, `SELECT version FROM shared_groups_version WHERE id = 1`).Scan(&v); err != nil {
		return 0, fmt.Errorf("storage: shared groups version: %w", err)
	}
	return v, nil
}

// All returns every group, sorted by name, and the version they are at,
// read in one transaction.
func (g *SharedGroups) All(ctx context.Context) (_ []SharedGroup, version int64, err error) {
	tx, err := g.db.sql.BeginTx(ctx, &sql.TxOptions{ReadOnly: g.db.dialect.name == "postgres"})
	if err != nil {
		return nil, 0, fmt.Errorf("storage: shared groups: %w", err)
	}
	defer rollback(tx)
	if err := tx.QueryRowContext(ctx, `SELECT version FROM shared_groups_version WHERE id = 1`).Scan(&version); err != nil {
		return nil, 0, fmt.Errorf("storage: shared groups: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT name, display_name, description, show_to, show_to_groups FROM shared_groups ORDER BY name`)
	if err != nil {
		return nil, 0, fmt.Errorf("storage: shared groups: %w", err)
	}
	var groups []SharedGroup
	byName := map[string]int{}
	for rows.Next() {
		var sg SharedGroup
		var showTo string
		if err := rows.Scan(&sg.Name, &sg.DisplayName, &sg.Description, &sg.ShowTo, &showTo); err != nil {
			rows.Close()
			return nil, 0, fmt.Errorf("storage: shared groups: %w", err)
		}
		sg.ShowToGroups = splitLines(showTo)
		byName[sg.Name] = len(groups)
		groups = append(groups, sg)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("storage: shared groups: %w", err)
	}
	rows, err = tx.QueryContext(ctx, `SELECT group_name, jid FROM shared_group_members ORDER BY group_name, jid`)
	if err != nil {
		return nil, 0, fmt.Errorf("storage: shared group members: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, jid string
		if err := rows.Scan(&name, &jid); err != nil {
			return nil, 0, fmt.Errorf("storage: shared group members: %w", err)
		}
		if i, ok := byName[name]; ok {
			groups[i].Members = append(groups[i].Members, jid)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("storage: shared group members: %w", err)
	}
	return groups, version, nil
}

// Get returns one group; ok is false when there is none of that name.
func (g *SharedGroups) Get(ctx context.Context, name string) (_ SharedGroup, ok bool, err error) {
	all, _, err := g.All(ctx)
	if err != nil {
		return SharedGroup{}, false, err
	}
	for _, sg := range all {
		if sg.Name == name {
			return sg, true, nil
		}
	}
	return SharedGroup{}, false, nil
}

// Put creates the group or replaces it, members included, in one
// transaction. A member that is not an account fails it, wrapping
// ErrNotFound.
func (g *SharedGroups) Put(ctx context.Context, sg SharedGroup) (err error) {
	if err := checkSharedGroup(sg); err != nil {
		return fmt.Errorf("storage: put shared group %q: %w", sg.Name, err)
	}
	return g.change(ctx, "put shared group "+sg.Name, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO shared_groups (name, display_name, description, show_to, show_to_groups)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (name) DO UPDATE SET display_name = excluded.display_name, description = excluded.description,
				show_to = excluded.show_to, show_to_groups = excluded.show_to_groups`,
			sg.Name, sg.DisplayName, sg.Description, sg.ShowTo, strings.Join(sg.ShowToGroups, "\n")); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM shared_group_members WHERE group_name = $1`, sg.Name); err != nil {
			return err
		}
		return g.insertMembers(ctx, tx, sg.Name, sg.Members)
	})
}

// Update changes a group's settings (display name, description, who sees
// it), leaving its members; it wraps ErrNotFound when there is none.
func (g *SharedGroups) Update(ctx context.Context, sg SharedGroup) error {
	if err := checkSharedGroup(sg); err != nil {
		return fmt.Errorf("storage: update shared group %q: %w", sg.Name, err)
	}
	return g.change(ctx, "update shared group "+sg.Name, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE shared_groups SET display_name = $2, description = $3, show_to = $4, show_to_groups = $5
			WHERE name = $1`, sg.Name, sg.DisplayName, sg.Description, sg.ShowTo, strings.Join(sg.ShowToGroups, "\n"))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			return ErrNotFound
		}
		return err
	})
}

// AddMembers adds accounts to a group; members already in it are left.
func (g *SharedGroups) AddMembers(ctx context.Context, name string, jids []string) error {
	return g.change(ctx, "add to shared group "+name, func(tx *sql.Tx) error {
		if err := groupExists(ctx, tx, name); err != nil {
			return err
		}
		return g.insertMembers(ctx, tx, name, jids)
	})
}

// RemoveMembers removes accounts from a group.
func (g *SharedGroups) RemoveMembers(ctx context.Context, name string, jids []string) error {
	return g.change(ctx, "remove from shared group "+name, func(tx *sql.Tx) error {
		if err := groupExists(ctx, tx, name); err != nil {
			return err
		}
		for _, j := range jids {
			if _, err := tx.ExecContext(ctx, `DELETE FROM shared_group_members WHERE group_name = $1 AND jid = $2`, name, j); err != nil {
				return err
			}
		}
		return nil
	})
}

// Delete removes a group; it wraps ErrNotFound when there is none.
func (g *SharedGroups) Delete(ctx context.Context, name string) error {
	return g.change(ctx, "delete shared group "+name, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM shared_groups WHERE name = $1`, name)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			return ErrNotFound
		}
		return err
	})
}

// change runs fn in a transaction that also bumps the version.
func (g *SharedGroups) change(ctx context.Context, what string, fn func(*sql.Tx) error) (err error) {
	tx, err := g.db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storage: %s: %w", what, err)
	}
	defer func() {
		if err != nil {
			rollback(tx)
		}
	}()
	if err := fn(tx); err != nil {
		return fmt.Errorf("storage: %s: %w", what, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE shared_groups_version SET version = version + 1 WHERE id = 1`); err != nil {
		return fmt.Errorf("storage: %s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storage: %s: commit: %w", what, err)
	}
	return nil
}

func (g *SharedGroups) insertMembers(ctx context.Context, tx *sql.Tx, name string, jids []string) error {
	for _, j := range jids {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM accounts WHERE jid = $1`, j).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("member %s: %w", j, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO shared_group_members (group_name, jid) VALUES ($1, $2)
			ON CONFLICT (group_name, jid) DO NOTHING`, name, j); err != nil {
			return err
		}
	}
	return nil
}

func groupExists(ctx context.Context, tx *sql.Tx, name string) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM shared_groups WHERE name = $1`, name).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("group %q: %w", name, ErrNotFound)
	}
	return err
}

// checkSharedGroup refuses what would make the group unusable.
func checkSharedGroup(sg SharedGroup) error {
	switch {
	case sg.Name == "":
		return errors.New("empty group name")
	case sg.DisplayName == "":
		return errors.New("empty display name")
	case strings.Contains(sg.Name, "\n"):
		return errors.New("a group name cannot hold a line break")
	}
	switch sg.ShowTo {
	case "everybody", "members", "groups", "nobody":
	default:
		return fmt.Errorf("show_to %q is not everybody, members, groups or nobody", sg.ShowTo)
	}
	if slices.Contains(sg.ShowToGroups, "") {
		return errors.New("an empty group name in show_to_groups")
	}
	return nil
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
